/** GET /apps/{id}/channels/{name}/users: a presence channel's members, cluster-wide. */
import { channelType, isPresence } from "../../channels/index.ts";
import { HttpError } from "../errors.ts";
import type { RouteFactory } from "../route.ts";

export const channelUsers: RouteFactory = (node) => ({
  method: "GET",
  path: "/apps/:appId/channels/:channel/users",
  signed: true,
  async handle(c, call) {
    const name = c.req.param("channel") ?? "";
    if (!channelType(name)) throw new HttpError(400, `Invalid channel name "${name}"`);
    if (!isPresence(name)) {
      throw new HttpError(400, "Users can only be listed for presence channels");
    }
    const members = await node.cluster.state.presenceMembers(call.app.id, name);
    return c.json({ users: [...members.ids()].map((id) => ({ id })) });
  },
});
