import type { HostStep, RolloutRecord } from "@gild/core";
import { describe, expect, it } from "vitest";
import { copyRecord, sameRecord } from "../src/rollout-plan-context.js";
import { newRollout, withHosts, withRollout } from "./rollout-fixtures.js";

describe("sameRecord and copyRecord (run on every planning step, over every host)", () => {
  const record = newRollout(4, { canary: 1, waves: ["50%", "100%"] });
  const [first, second] = Object.keys(record.hosts) as [string, string];

  it("a copy says the same and shares no host step", () => {
    const copy = copyRecord(record);
    expect(sameRecord(copy, record)).toBe(true);
    expect(copy).toEqual(record);
    for (const id of Object.keys(record.hosts)) expect(copy.hosts[id]).not.toBe(record.hosts[id]);
  });

  it("tells apart a host field, a field more or less, a host more or less, the rest and the waves", () => {
    expect(sameRecord(withHosts(record, { [first]: { fetchAttempts: 1 } }), record)).toBe(false);
    const bad = [{ hostId: second, reason: "a bad chunk" }];
    expect(sameRecord(withHosts(record, { [first]: { badPeers: bad } }), record)).toBe(false);
    expect(sameRecord(record, withHosts(record, { [first]: { badPeers: bad } }))).toBe(false);
    const fewer = copyRecord(record);
    delete fewer.hosts[first];
    expect(sameRecord(fewer, record)).toBe(false);
    expect(sameRecord(record, fewer)).toBe(false);
    // A step with a field less, and one more elsewhere: the same count of fields, not the same step.
    const { reason: _reason, ...withoutReason } = record.hosts[first] as HostStep;
    const odd: RolloutRecord = {
      ...record,
      hosts: { ...record.hosts, [first]: { ...withoutReason, badPeers: bad } as unknown as HostStep },
    };
    expect(sameRecord(odd, record)).toBe(false);
    expect(sameRecord(withRollout(record, { currentWave: 1 }), record)).toBe(false);
    expect(sameRecord(withRollout(record, { waves: [...record.waves].reverse() }), record)).toBe(false);
  });
});
