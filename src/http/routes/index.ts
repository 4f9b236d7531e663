/**
 * Every HTTP endpoint Chorus serves, one file each (README, "Routes"). The app (src/http/app.ts)
 * registers them in this order and answers 405 for their paths with any other method.
 */
import type { ChorusNode } from "../../node.ts";
import type { Route } from "../route.ts";
import { appHealth } from "./app-health.ts";
import { channel } from "./channel.ts";
import { channelEvents } from "./channel-events.ts";
import { channelUsers } from "./channel-users.ts";
import { channels } from "./channels.ts";
import { connections } from "./connections.ts";
import { metrics } from "./metrics.ts";
import { ready } from "./ready.ts";
import { sessionSocket, socket } from "./socket.ts";
import { terminateConnections } from "./terminate-connections.ts";
import { triggerBatch } from "./trigger-batch.ts";
import { triggerEvent } from "./trigger-event.ts";
import { up } from "./up.ts";

export { metricsHandler } from "./metrics.ts";

export function routeTable(node: ChorusNode): Route[] {
  return [
    socket,
    sessionSocket,
    up,
    ready,
    // On CHORUS_METRICS_PORT instead, when set (src/server.ts).
    ...(node.config.metricsPort === undefined ? [metrics] : []),
    appHealth,
    triggerEvent,
    triggerBatch,
    channels,
    channel,
    channelUsers,
    channelEvents,
    terminateConnections,
    connections,
  ].map((route) => route(node));
}
