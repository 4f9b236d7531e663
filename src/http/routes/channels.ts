/** GET /apps/{id}/channels: occupied channels cluster-wide, by prefix, with counts. */
import { parseInfo } from "../events.ts";
import { countsFor } from "../publish.ts";
import type { RouteFactory } from "../route.ts";

export const channels: RouteFactory = (node) => ({
  method: "GET",
  path: "/apps/:appId/channels",
  signed: true,
  async handle(c, call) {
    const target = call.app;
    const info = parseInfo(c.req.query("info"), ["user_count", "subscription_count"]);
    const prefix = c.req.query("filter_by_prefix") ?? "";
    const channels: Record<string, Record<string, number>> = {};
    for (const [name, counts] of await node.cluster.state.channels(target.id, prefix)) {
      channels[name] = countsFor(name, counts, info);
    }
    return c.json({ channels });
  },
});
