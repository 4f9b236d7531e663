/** The HTTP side: the Hono app built from the route table, and the metrics handler. */
export { createHttpApp, metricsHandler } from "./app.ts";
