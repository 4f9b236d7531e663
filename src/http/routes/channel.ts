/** GET /apps/{id}/channels/{name}: one channel's state, counts and cached event. */
import { channelType } from "../../channels/index.ts";
import { HttpError } from "../errors.ts";
import { parseInfo } from "../events.ts";
import { countsFor } from "../publish.ts";
import type { RouteFactory } from "../route.ts";

export const channel: RouteFactory = (node) => ({
  method: "GET",
  path: "/apps/:appId/channels/:channel",
  signed: true,
  async handle(c, call) {
    const target = call.app;
    const name = c.req.param("channel") ?? "";
    if (!channelType(name)) throw new HttpError(400, `Invalid channel name "${name}"`);
    const info = parseInfo(c.req.query("info"), ["user_count", "subscription_count", "cache"]);
    const { state } = node.cluster;
    const counts = await state.channel(target.id, name);
    const cached = info.has("cache") ? await state.getCache(target.id, name) : undefined;
    return c.json({
      occupied: counts.subscriptionCount > 0,
      ...countsFor(name, counts, info),
      ...(cached ? { cache: cached } : {}),
    });
  },
});
