/**
 * Recovery channels' histories in Redis, written by the PUBLISH script and read by HISTORY
 * (src/cluster/bus-scripts.ts, which documents the keys); the same rules as the memory driver
 * (src/cluster/history.ts, test/history-contract.test.ts).
 */
import type { RedisLink } from "./redis-link.ts";
import type { History, HistoryPage, KeepPolicy, KeptEvent } from "./types.ts";

export class RedisHistory implements History {
  constructor(readonly link: RedisLink) {}

  async read(
    appId: string,
    channel: string,
    since: number,
    keep: KeepPolicy,
  ): Promise<HistoryPage> {
    this.link.assertReady();
    const reply = await this.link.run("HISTORY", appId, channel, since, keep.ttlMs) as unknown[];
    const epoch = String(reply[0]);
    const serial = Number(reply[1]);
    if (epoch === "") return { epoch, serial: 0, events: [], complete: since === 0 };
    const first = Number(reply[2]) || serial + 1;
    const events: KeptEvent[] = [];
    for (let i = 3; i + 2 < reply.length; i += 3) {
      const except = String(reply[i + 2]);
      events.push({
        serial: Number(reply[i]),
        frame: String(reply[i + 1]),
        ...(except === "" ? {} : { exceptSocketId: except }),
      });
    }
    const complete = since <= serial && since >= first - 1;
    return { epoch, serial, events, complete };
  }
}
