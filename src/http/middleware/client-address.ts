/**
 * The client's address: the one header of the configured proxy (never a header the proxy does not
 * set, which a client could choose), else the peer (docs/deploy-nginx.md, "Client addresses").
 */
import type { Context } from "hono";
import type { ChorusNode } from "../../node.ts";

export function clientAddress(node: ChorusNode, c: Context): string {
  const trust = node.config.trustProxy;
  if (trust.kind === "fly") {
    const address = c.req.header("fly-client-ip")?.trim();
    if (address) return address;
  } else if (trust.kind === "xff") {
    // Each of our proxies appended the address it saw; earlier entries are the client's own.
    const entries = c.req.header("x-forwarded-for")?.split(",") ?? [];
    const address = entries.at(-trust.hops)?.trim();
    if (entries.length >= trust.hops && address) return address;
  }
  return node.adapter.clientAddress(c);
}
