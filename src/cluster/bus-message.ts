/**
 * The Redis bus's message format (src/cluster/redis-bus.ts): what a node sends with each event,
 * and the PUBLISH script (src/cluster/bus-scripts.ts) adds to it:
 *   `{origin node}\n{excluded socket}\n{publish time ms}\n` (the head, ours)
 *   `{epoch}\n{sequence}\n{position}\n` (the script's: `{serial}@{history epoch}` or '')
 *   `{frame}`
 */
import type { KeptPosition } from "./types.ts";

/** The part of a message the publishing node writes. */
export function messageHead(origin: string, exceptSocketId: string, now: number): string {
  return `${origin}\n${exceptSocketId}\n${now}\n`;
}

export interface BusMessage {
  origin: string;
  exceptSocketId: string | undefined;
  sentAt: number;
  /** The Redis epoch and the channel's sequence number (src/cluster/sequence.ts). */
  epoch: string;
  seq: number;
  /** Set for a kept event of a recovery channel. */
  position: KeptPosition | undefined;
  frame: string;
}

/** Undefined for a message not in this format. */
export function parseMessage(message: string): BusMessage | undefined {
  const originEnd = message.indexOf("\n");
  const exceptEnd = message.indexOf("\n", originEnd + 1);
  const timeEnd = message.indexOf("\n", exceptEnd + 1);
  const epochEnd = message.indexOf("\n", timeEnd + 1);
  const seqEnd = message.indexOf("\n", epochEnd + 1);
  const positionEnd = message.indexOf("\n", seqEnd + 1);
  if (originEnd < 0 || exceptEnd < 0 || timeEnd < 0 || epochEnd < 0 || positionEnd < 0) {
    return undefined;
  }
  return {
    origin: message.slice(0, originEnd),
    exceptSocketId: exceptEnd > originEnd + 1 ? message.slice(originEnd + 1, exceptEnd) : undefined,
    sentAt: Number(message.slice(exceptEnd + 1, timeEnd)),
    epoch: message.slice(timeEnd + 1, epochEnd),
    seq: Number(message.slice(epochEnd + 1, seqEnd)),
    position: positionEnd > seqEnd + 1
      ? parsePosition(message.slice(seqEnd + 1, positionEnd))
      : undefined,
    frame: message.slice(positionEnd + 1),
  };
}

function parsePosition(text: string): KeptPosition {
  const at = text.indexOf("@");
  return { serial: Number(text.slice(0, at)), epoch: text.slice(at + 1) };
}
