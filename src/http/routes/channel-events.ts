/**
 * GET /apps/{id}/channels/{name}/events?since={serial}: a recovery channel's kept events after a
 * serial, with the history's epoch, for backends that catch up by themselves (docs/recovery.md).
 */
import { channelType, keepPolicy } from "../../channels/index.ts";
import { HttpError } from "../errors.ts";
import type { RouteFactory } from "../route.ts";

export const channelEvents: RouteFactory = (node) => ({
  method: "GET",
  path: "/apps/:appId/channels/:channel/events",
  signed: true,
  async handle(c, call) {
    const name = c.req.param("channel") ?? "";
    if (!channelType(name)) throw new HttpError(400, `Invalid channel name "${name}"`);
    const keep = keepPolicy(call.app, name);
    if (!keep) {
      throw new HttpError(404, `Channel "${name}" keeps no events (apps[].recovery.channels)`);
    }
    const raw = c.req.query("since") ?? "0";
    if (!/^\d{1,15}$/.test(raw)) {
      throw new HttpError(400, `since must be a serial (a whole number from 0), got "${raw}"`);
    }
    const page = await node.cluster.history.read(call.app.id, name, Number(raw), keep);
    return c.json({
      epoch: page.epoch,
      serial: page.serial,
      complete: page.complete,
      events: page.events.map((kept) => ({ serial: kept.serial, ...JSON.parse(kept.frame) })),
    });
  },
});
