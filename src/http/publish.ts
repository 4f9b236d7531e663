/** From an accepted HTTP event to the bus: one frame per channel, and the counts asked for. */
import { isPresence, keepPolicy } from "../channels/index.ts";
import type { ChannelCounts } from "../cluster/types.ts";
import type { AppConfig } from "../config.ts";
import { errorMessage } from "../log.ts";
import type { ChorusNode } from "../node.ts";
import { channelEventFrame } from "../protocol/index.ts";
import { HttpError } from "./errors.ts";
import type { InfoField, OutgoingEvent } from "./events.ts";

/** Publishes an event to each of its channels; 503 when the cluster cannot guarantee delivery. */
export async function publish(
  node: ChorusNode,
  app: AppConfig,
  event: OutgoingEvent,
): Promise<void> {
  const { bus, state } = node.cluster;
  const { channels } = event;
  try {
    // Most events name one channel: no array of promises for it.
    if (channels.length === 1) {
      const frame = channelEventFrame(event.name, channels[0], event.data);
      await bus.publish(app.id, channels[0], frame, event.socketId, keepPolicy(app, channels[0]));
    } else {
      await Promise.all(channels.map((channel) =>
        bus.publish(
          app.id,
          channel,
          channelEventFrame(event.name, channel, event.data),
          event.socketId,
          keepPolicy(app, channel),
        )
      ));
    }
  } catch (error) {
    node.log.warn("publish refused", { app: app.id, error: errorMessage(error) });
    throw new HttpError(503, "Event could not be delivered to the cluster; retry");
  }
  // Cache channels keep the last event for later subscribers, even with none now.
  if (event.cacheChannels.length === 0) return;
  await Promise.all(
    event.cacheChannels.map((channel) =>
      state.setCache({
        appId: app.id,
        channel,
        event: { event: event.name, data: event.data },
        ttlSeconds: app.cache_ttl,
      })
    ),
  );
}

/** The counts the event's `info` asked for, per channel. */
export async function channelInfos(
  node: ChorusNode,
  app: AppConfig,
  event: OutgoingEvent,
): Promise<Record<string, Record<string, number>>> {
  const infos: Record<string, Record<string, number>> = {};
  await Promise.all(event.channels.map(async (channel) => {
    infos[channel] = countsFor(
      channel,
      await node.cluster.state.channel(app.id, channel),
      event.info,
    );
  }));
  return infos;
}

/** The requested counts; `user_count` exists for presence channels only. */
export function countsFor(
  channel: string,
  counts: ChannelCounts,
  info: ReadonlySet<InfoField>,
): Record<string, number> {
  const result: Record<string, number> = {};
  if (info.has("user_count") && isPresence(channel)) result.user_count = counts.userCount ?? 0;
  if (info.has("subscription_count")) result.subscription_count = counts.subscriptionCount;
  return result;
}
