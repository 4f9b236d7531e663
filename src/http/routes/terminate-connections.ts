/** POST /apps/{id}/users/{user}/terminate_connections: closes the user's sockets everywhere. */
import { userControlChannel } from "../../channels/index.ts";
import { errorMessage } from "../../log.ts";
import { HttpError } from "../errors.ts";
import type { RouteFactory } from "../route.ts";

export const terminateConnections: RouteFactory = (node) => ({
  method: "POST",
  path: "/apps/:appId/users/:userId/terminate_connections",
  signed: true,
  async handle(c, call) {
    const target = call.app;
    const userId = c.req.param("userId") ?? "";
    try {
      await node.cluster.bus.publish(target.id, userControlChannel(userId), "terminate");
    } catch (error) {
      node.log.warn("terminate refused", { app: target.id, error: errorMessage(error) });
      throw new HttpError(503, "Terminate could not reach the cluster; retry");
    }
    return c.json({});
  },
});
