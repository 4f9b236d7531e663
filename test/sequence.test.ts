// How a node tells missed events from events it never had to receive (src/cluster/sequence.ts).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ChannelSequence } from "../src/cluster/sequence.ts";

function at(last: number): ChannelSequence {
  const sequence = new ChannelSequence();
  sequence.counted(last);
  return sequence;
}

describe("channel sequence numbers", { timeout: 5000 }, () => {
  it("the first number known is the baseline, in order nothing is missed", () => {
    const sequence = new ChannelSequence();
    assert.equal(sequence.arrived(7, false), 0);
    assert.equal(sequence.arrived(8, false), 0);
    assert.equal(sequence.counted(8), 0);
    assert.equal(sequence.last, 8);
  });

  it("a jump counts the events that never arrived", () => {
    const sequence = at(3);
    assert.equal(sequence.arrived(6, false), 2, "4 and 5");
    assert.equal(sequence.counted(9), 3, "7, 8 and 9");
  });

  it("our own publishes made while away are no gap", () => {
    const sequence = at(4);
    sequence.published(5);
    sequence.published(6);
    assert.equal(sequence.counted(6), 0);
    sequence.published(7);
    assert.equal(sequence.counted(9), 2, "8 and 9 were someone else's");
  });

  it("our own event seen before the script answered is not subtracted again later", () => {
    const sequence = at(4);
    assert.equal(sequence.arrived(5, true), 0);
    sequence.published(5);
    assert.equal(sequence.counted(7), 2, "6 and 7 were missed");
  });

  it("our own event answered before it arrived counts once", () => {
    const sequence = at(4);
    sequence.published(5);
    assert.equal(sequence.arrived(5, true), 0);
    assert.equal(sequence.counted(7), 2, "6 and 7 were missed");
  });

  it("Redis restarted empty: what it numbered since, less our own, was missed", () => {
    const held = at(10);
    held.published(1); // a relay held while Redis was away, sent to the new one
    assert.equal(held.counted(1), 0);

    const quiet = at(10);
    assert.equal(quiet.counted(0), 0, "no counter, nothing published");

    const busy = at(10);
    busy.published(1);
    assert.equal(busy.counted(3), 2);

    const arriving = at(10);
    assert.equal(arriving.arrived(1, false), 0);
    const late = at(10);
    assert.equal(late.arrived(3, false), 2, "1 and 2 were published before we subscribed again");
    const ours = at(10);
    ours.published(1);
    assert.equal(ours.arrived(3, false), 1, "1 was ours, 2 was missed");
  });

  it("keeps at most a bounded number of own numbers; beyond, gaps count as missed", () => {
    const sequence = at(0);
    for (let n = 1; n <= 1_500; n++) sequence.published(n);
    const missed = sequence.counted(1_500);
    assert.ok(missed > 0 && missed <= 500, `missed ${missed}`);
  });
});
