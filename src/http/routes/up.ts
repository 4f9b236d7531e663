/** GET /up: the process is alive. */
import type { RouteFactory } from "../route.ts";

export const up: RouteFactory = () => ({
  method: "GET",
  path: "/up",
  signed: false,
  handle: (c) => c.json({ health: "OK" }),
});
