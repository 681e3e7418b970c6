import {
  commandsCalledFor,
  hostsHoldingWave,
  isUrgentNews,
  type RolloutCommand,
  rolloutCommandKey,
  withdrawalsFor,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import { newRollout, withHosts, withRollout } from "./rollout-fixtures.js";

const keys = (commands: RolloutCommand[]) => commands.map(rolloutCommandKey);

// One rule decides what a stored record calls for: the executor sends it after every step (and after a
// restart), and the planner's commands are made from it. These rows are that rule.
describe("commandsCalledFor: what a stored rollout record calls for", () => {
  const record = newRollout(4, { canary: 1, waves: ["100%"] });
  const [h1, h2, h3, h4] = Object.keys(record.hosts) as [string, string, string, string];
  const busy = withHosts(record, {
    [h1]: { state: "rolling-back", rollbackPending: false },
    [h2]: { state: "switching" },
    [h3]: { state: "fetching", fetchAttempts: 2 },
    [h4]: { state: "rolling-back", rollbackPending: true },
  });

  it("a running rollout: the current fetch attempt, the switch, the rollback under way (not a pending one)", () => {
    expect(new Set(keys(commandsCalledFor(busy)))).toEqual(
      new Set([`${h1}:rollback`, `${h2}:switch`, `${h3}:fetch:2`]),
    );
  });

  it("a paused rollout: no fetch, no switch, but a host already rolling back is down: its rollback goes on", () => {
    expect(keys(commandsCalledFor(withRollout(busy, { state: "paused" })))).toEqual([`${h1}:rollback`]);
  });

  it("an ended rollout calls for nothing", () => {
    for (const state of ["succeeded", "failed", "aborted", "rolled-back"] as const)
      expect(commandsCalledFor(withRollout(busy, { state }))).toEqual([]);
  });

  it("fetch attempts have ids of their own; a switch and a rollback one per host", () => {
    expect(rolloutCommandKey({ kind: "fetch", hostId: "h", attempt: 3 })).toBe("h:fetch:3");
    expect(rolloutCommandKey({ kind: "switch", hostId: "h" })).toBe("h:switch");
  });
});

describe("withdrawalsFor: commands no host took that the record no longer wants", () => {
  const record = newRollout(3, { canary: 1, waves: ["100%"] });
  const [h1, h2, h3] = Object.keys(record.hosts) as [string, string, string];

  it("fetches and switches of failed and rolled-back hosts, never rollbacks", () => {
    const r = withHosts(record, {
      [h1]: { state: "failed" },
      [h2]: { state: "rollback-failed" },
      [h3]: { state: "switching" },
    });
    expect(withdrawalsFor(r)).toEqual([
      { hostId: h1, kinds: ["fetch", "switch"] },
      { hostId: h2, kinds: ["fetch", "switch"] },
    ]);
  });

  it("every fetch and switch once the rollout has ended", () => {
    expect(withdrawalsFor(withRollout(record, { state: "failed" }))).toEqual([
      { hostId: null, kinds: ["fetch", "switch"] },
    ]);
  });
});

describe("isUrgentNews: which hosts' news a rollout plans at once", () => {
  // 20 hosts: the canary (wave 0), then 10% (2 hosts, wave 1) and the rest (17, wave 2).
  const record = newRollout(20, { canary: 1, waves: ["10%", "100%"] });
  const inWave = (wave: number) => record.waves[wave]?.[0] as string;

  it("while it goes forward: the current wave's hosts and earlier ones at once, a later wave's (its prefetch) not", () => {
    for (const state of ["running", "awaiting-promotion"] as const) {
      const at1 = withRollout(record, { state, currentWave: 1 });
      expect(isUrgentNews(at1, inWave(0))).toBe(true);
      expect(isUrgentNews(at1, inWave(1))).toBe(true);
      expect(isUrgentNews(at1, inWave(2))).toBe(false);
    }
    expect(isUrgentNews(withRollout(record, { state: "running", currentWave: 2 }), inWave(2))).toBe(true);
  });

  it("a host the record does not know, and every host of a rollout rolling back, paused or ended: at once", () => {
    expect(isUrgentNews(withRollout(record, { state: "running", currentWave: 0 }), "h_unknown")).toBe(true);
    for (const state of ["rolling-back", "paused", "succeeded", "aborted"] as const)
      expect(isUrgentNews(withRollout(record, { state, currentWave: 0 }), inWave(2))).toBe(true);
  });
});

describe("hostsHoldingWave: whose news may let a rollout go on", () => {
  // 20 hosts: the canary (wave 0), then 10% (2 hosts, wave 1) and the rest (17, wave 2).
  const record = newRollout(20, { canary: 1, waves: ["10%", "100%"] });
  const [a, b] = record.waves[1] as [string, string];

  it("the deploying wave's hosts that are not done, failed hosts still to roll back among them", () => {
    const deploying = withRollout(record, { state: "running", phase: "deploying", currentWave: 1 });
    expect(hostsHoldingWave(deploying)).toEqual([a, b]);
    expect(hostsHoldingWave(withHosts(deploying, { [a]: { state: "healthy" } }))).toEqual([b]);
    expect(
      hostsHoldingWave(withHosts(deploying, { [a]: { state: "failed", rollbackPending: true } })),
    ).toEqual([a, b]);
    expect(
      hostsHoldingWave(
        withHosts(deploying, { [a]: { state: "healthy" }, [b]: { state: "failed", rollbackPending: false } }),
      ),
    ).toEqual([]);
  });

  it("none while a wave bakes (its end is a clock), nor in any state but running", () => {
    expect(
      hostsHoldingWave(withRollout(record, { state: "running", phase: "baking", currentWave: 1 })),
    ).toEqual([]);
    for (const state of ["awaiting-promotion", "paused", "rolling-back", "succeeded"] as const)
      expect(hostsHoldingWave(withRollout(record, { state, phase: "deploying", currentWave: 1 }))).toEqual(
        [],
      );
  });
});
