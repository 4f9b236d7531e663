/** POST /apps/{id}/events: one event to up to 100 channels (docs/protocol.md §9). */
import { parseEventBody, parseJsonBody } from "../events.ts";
import { channelInfos, publish } from "../publish.ts";
import type { RouteFactory } from "../route.ts";

export const triggerEvent: RouteFactory = (node) => ({
  method: "POST",
  path: "/apps/:appId/events",
  signed: true,
  async handle(c, call) {
    const target = call.app;
    const event = parseEventBody(parseJsonBody(call.body), target);
    await publish(node, target, event);
    if (event.info.size === 0) return c.json({});
    return c.json({ channels: await channelInfos(node, target, event) });
  },
});
