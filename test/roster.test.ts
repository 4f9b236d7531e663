// The encoded member list (src/channels/roster.ts) against a plain JSON encoding of the same
// members, after appends, replacements and deletions, with ids and infos that need escaping.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Roster } from "../src/channels/index.ts";

function plainFrame(channel: string, members: Map<string, unknown>): unknown {
  const hash = Object.fromEntries(members);
  return {
    event: "pusher_internal:subscription_succeeded",
    channel,
    data: { presence: { ids: [...members.keys()], hash, count: members.size } },
  };
}

function parsed(roster: Roster): unknown {
  const frame = JSON.parse(roster.frame());
  return { ...frame, data: JSON.parse(frame.data) };
}

describe("presence roster", { timeout: 10000 }, () => {
  it("encodes what JSON.stringify would, through appends, replacements and deletes", () => {
    const channel = 'presence-"odd"\\name';
    const roster = new Roster(channel);
    const model = new Map<string, unknown>();
    const ids = ["1", "alice", 'q"uote', "back\\slash", "uni\u00e9\u{1F600}", "line\nbreak", "7"];
    const ops: [string, string, unknown?][] = [];
    ids.forEach((id, i) => ops.push(["set", id, { name: `n${i}`, tricky: '"\\\u2028' }]));
    ops.push(["delete", "alice"], ["set", 'q"uote', null], ["set", "alice", [1, 2]]);
    ops.push(["delete", "1"], ["set", "8", "plain"], ["delete", "nobody"]);
    for (const [op, id, info] of ops) {
      if (op === "set") {
        roster.set(id, JSON.stringify(info));
        model.set(id, info);
      } else {
        assert.equal(roster.delete(id), model.delete(id));
      }
      assert.deepEqual(parsed(roster), plainFrame(channel, model), `after ${op} ${id}`);
      assert.deepEqual(roster.members(), model);
      assert.equal(roster.size, model.size);
    }
  });

  it("reuses the frame until the list changes", () => {
    const roster = new Roster("presence-a", [["u1", "{}"]]);
    const first = roster.frame();
    assert.equal(roster.frame(), first);
    roster.set("u1", "{}");
    assert.equal(roster.frame(), first, "the same member with the same info changes nothing");
    roster.set("u2", '{"x":1}');
    assert.notEqual(roster.frame(), first);
  });

  it("an empty list is an empty presence object", () => {
    assert.deepEqual(parsed(new Roster("presence-e")), plainFrame("presence-e", new Map()));
  });
});
