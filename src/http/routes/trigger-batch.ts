/** POST /apps/{id}/batch_events: up to 10 events, each to one channel. */
import { parseBatchBody, parseJsonBody } from "../events.ts";
import { channelInfos, publish } from "../publish.ts";
import type { RouteFactory } from "../route.ts";

export const triggerBatch: RouteFactory = (node) => ({
  method: "POST",
  path: "/apps/:appId/batch_events",
  signed: true,
  async handle(c, call) {
    const target = call.app;
    const events = parseBatchBody(parseJsonBody(call.body), target);
    await Promise.all(events.map((event) => publish(node, target, event)));
    // Counts only when some event asked for them.
    if (events.every((event) => event.info.size === 0)) {
      return c.json({ batch: events.map(() => ({})) });
    }
    const batch = await Promise.all(events.map(async (event) => {
      if (event.info.size === 0) return {};
      const infos = await channelInfos(node, target, event);
      return infos[event.channels[0]];
    }));
    return c.json({ batch });
  },
});
