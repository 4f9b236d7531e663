// How a node tells missed events from events it never had to receive (src/cluster/sequence.ts),
// and the bus message format that carries the numbers (src/cluster/bus-message.ts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { messageHead, parseMessage } from "../src/cluster/bus-message.ts";
import { ChannelSequence } from "../src/cluster/sequence.ts";

/** The epoch of the Redis that numbered the events; RESTARTED, that of the same Redis restarted. */
const E = "1764806400.1";
const RESTARTED = "1764806460.2";

function at(last: number): ChannelSequence {
  const sequence = new ChannelSequence();
  sequence.counted(E, last);
  return sequence;
}

describe("channel sequence numbers", { timeout: 5000 }, () => {
  it("the first number known is the baseline, in order nothing is missed", () => {
    const sequence = new ChannelSequence();
    assert.equal(sequence.arrived(E, 7, false), 0);
    assert.equal(sequence.arrived(E, 8, false), 0);
    assert.equal(sequence.counted(E, 8), 0);
    assert.equal(sequence.last, 8);
  });

  it("a jump counts the events that never arrived", () => {
    const sequence = at(3);
    assert.equal(sequence.arrived(E, 6, false), 2, "4 and 5");
    assert.equal(sequence.counted(E, 9), 3, "7, 8 and 9");
  });

  it("our own publishes made while away are no gap", () => {
    const sequence = at(4);
    sequence.published(E, 5);
    sequence.published(E, 6);
    assert.equal(sequence.counted(E, 6), 0);
    sequence.published(E, 7);
    assert.equal(sequence.counted(E, 9), 2, "8 and 9 were someone else's");
  });

  it("our own event seen before the script answered is not subtracted again later", () => {
    const sequence = at(4);
    assert.equal(sequence.arrived(E, 5, true), 0);
    sequence.published(E, 5);
    assert.equal(sequence.counted(E, 7), 2, "6 and 7 were missed");
  });

  it("our own event answered before it arrived counts once", () => {
    const sequence = at(4);
    sequence.published(E, 5);
    assert.equal(sequence.arrived(E, 5, true), 0);
    assert.equal(sequence.counted(E, 7), 2, "6 and 7 were missed");
  });

  it("a counter that was lost (it expired) and starts again is read as a fall", () => {
    const held = at(10);
    held.published(E, 1); // a relay held while Redis was away, sent to the new one
    assert.equal(held.counted(E, 1), 0);

    const quiet = at(10);
    assert.equal(quiet.counted(E, 0), 0, "no counter, nothing published");

    const busy = at(10);
    busy.published(E, 1);
    assert.equal(busy.counted(E, 3), 2);

    const arriving = at(10);
    assert.equal(arriving.arrived(E, 1, false), 0);
    const late = at(10);
    assert.equal(late.arrived(E, 3, false), 2, "1 and 2 were published before we subscribed again");
    const ours = at(10);
    ours.published(E, 1);
    assert.equal(ours.arrived(E, 3, false), 1, "1 was ours, 2 was missed");
  });

  it("Redis restarted empty: a new epoch counts from its start, even back to the old number", () => {
    const level = at(10);
    assert.equal(level.counted(RESTARTED, 10), 10, "the counter climbed back to exactly 10");
    assert.equal(level.last, 10);
    assert.equal(level.counted(RESTARTED, 10), 0, "compared once");

    const above = at(10);
    assert.equal(above.arrived(RESTARTED, 12, false), 11, "1 to 11 were missed");

    const quiet = at(10);
    assert.equal(quiet.counted(RESTARTED, 0), 0, "nothing numbered since the restart");

    const ours = at(10);
    ours.published(E, 11); // an old-epoch number still waiting to be seen: meaningless now
    ours.published(RESTARTED, 1);
    ours.published(RESTARTED, 2);
    assert.equal(ours.counted(RESTARTED, 12), 10, "3 to 12 were someone else's");

    const early = at(10);
    assert.equal(early.arrived(RESTARTED, 1, true), 0, "our own, first of the epoch");
    early.published(RESTARTED, 1);
    assert.equal(early.arrived(RESTARTED, 2, false), 0);
  });

  it("keeps at most a bounded number of own numbers; beyond, gaps count as missed", () => {
    const sequence = at(0);
    for (let n = 1; n <= 1_500; n++) sequence.published(E, n);
    const missed = sequence.counted(E, 1_500);
    assert.ok(missed > 0 && missed <= 500, `missed ${missed}`);
  });
});

describe("bus messages", { timeout: 5000 }, () => {
  it("read back what the node and the PUBLISH script wrote", () => {
    const head = messageHead("node-a", "7.1", 1_700_000_000_000);
    assert.deepEqual(parseMessage(`${head}1764806400.1\n12\n\n{"event":"e"}`), {
      origin: "node-a",
      exceptSocketId: "7.1",
      sentAt: 1_700_000_000_000,
      epoch: "1764806400.1",
      seq: 12,
      position: undefined,
      frame: '{"event":"e"}',
    });
    const kept = parseMessage(`${messageHead("b", "", 1)}e\n3\n5@1764806400.9\nframe\nwith lines`);
    assert.equal(kept?.exceptSocketId, undefined);
    assert.deepEqual(kept?.position, { serial: 5, epoch: "1764806400.9" });
    assert.equal(kept?.frame, "frame\nwith lines");
    assert.equal(parseMessage("not\na message"), undefined);
  });
});
