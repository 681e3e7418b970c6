import type {
  FleetObservation,
  HostState,
  HostStep,
  PlanResult,
  RawStrategy,
  RolloutRecord,
  RolloutState,
} from "@gild/core";
import { rolloutReasonCode, SWITCHES_AT_WAVE_START } from "@gild/core";
import { describe, expect, it } from "vitest";
import {
  fetched,
  fleetObs,
  kinds,
  MIN,
  newRollout,
  ok,
  onTarget,
  plan,
  SEC,
  T0,
  withHosts,
  withRollout,
} from "./rollout-fixtures.js";

const t = T0 + MIN;
const LONG_AGO = T0 - MIN;

/** The rollout at `wave`, deploying since `now`: every earlier wave healthy. */
function atWave(record: RolloutRecord, wave: number, now = t): RolloutRecord {
  const out = withRollout(record, {
    currentWave: wave,
    phase: "deploying",
    progressDeadlineAt: now + 10 * MIN,
  });
  for (const id of out.waves.slice(0, wave).flat()) {
    out.hosts[id] = { ...(out.hosts[id] as HostStep), state: "healthy", switchedAt: T0, healthyAt: T0 };
  }
  return out;
}

const switched = (at = t, state: HostState = "verifying"): Partial<HostStep> => ({
  state,
  switchedAt: at,
  deadlineAt: at + 5 * MIN,
});

/** Observation where every switched or healthy host of the record runs the target, healthy for long. */
function obsFor(record: RolloutRecord, patch: Parameters<typeof fleetObs>[1] = {}): FleetObservation {
  const base: Parameters<typeof fleetObs>[1] = {};
  for (const h of Object.values(record.hosts)) {
    if (h.state === "healthy") base[h.hostId] = { hasImage: true, switch: ok, apps: onTarget(LONG_AGO) };
    if (h.state === "verifying")
      base[h.hostId] = { hasImage: true, switch: ok, apps: onTarget(null, "unknown") };
  }
  for (const [id, p] of Object.entries(patch)) base[id] = { ...base[id], ...p };
  return fleetObs(record, base);
}

interface Row {
  name: string;
  record: RolloutRecord;
  /** The observation, or a function of the record (to observe its healthy hosts as healthy). */
  obs: FleetObservation | ((record: RolloutRecord) => FleetObservation);
  now: number;
  commands: string[];
  state?: RolloutState;
  hosts?: Record<string, HostState>;
  mark?: "stable" | "bad" | null;
  nextWakeAt?: number | null;
  check?: (res: PlanResult, input: RolloutRecord) => void;
}

function runRows(rows: Row[]): void {
  it.each(rows.map((row) => [row.name, row] as const))("%s", (_name, row) => {
    const obs = typeof row.obs === "function" ? row.obs(row.record) : row.obs;
    const res = plan(row.record, obs, row.now);
    expect(kinds(res.commands)).toEqual([...row.commands].sort());
    if (row.state !== undefined) expect(res.rollout.state).toBe(row.state);
    for (const [id, state] of Object.entries(row.hosts ?? {}))
      expect([id, res.rollout.hosts[id]?.state]).toEqual([id, state]);
    if (row.mark !== undefined) expect(res.markVersion).toBe(row.mark);
    if (row.nextWakeAt !== undefined) expect(res.nextWakeAt).toBe(row.nextWakeAt);
    row.check?.(res, row.record);
    // Idempotent: the same observation again sends nothing and changes nothing.
    const again = plan(res.rollout, obs, row.now);
    expect(again.commands).toEqual([]);
    expect(again.rollout).toEqual(res.rollout);
  });
}

// Three hosts: canary h1, then one wave with the other two.
const r3 = newRollout(3, { canary: ["h1"], waves: ["100%"] });
const [a, b] = r3.waves[1] as [string, string];
const fetching = { state: "fetching" as const, fetchAttempts: 1 };
const r3fetching = withHosts(r3, { h1: fetching, [a]: fetching, [b]: fetching });
const canarySwitched = withHosts(r3fetching, { h1: switched(T0, "switching") });

describe("planRollout: one host through its steps (canary h1, prefetch on)", () => {
  runRows([
    {
      name: "a new rollout fetches the canary and prefetches the next wave",
      record: r3,
      obs: fleetObs(r3),
      now: T0,
      commands: ["fetch:h1", `fetch:${a}`, `fetch:${b}`],
      hosts: { h1: "fetching", [a]: "fetching", [b]: "fetching" },
      nextWakeAt: T0 + 10 * MIN,
      check: (res) => expect(res.commands.every((c) => c.kind !== "fetch" || c.attempt === 1)).toBe(true),
    },
    {
      name: "without prefetch only the current wave fetches",
      record: newRollout(3, { canary: ["h1"], waves: ["100%"], prefetch: false }),
      obs: fleetObs(r3),
      now: T0,
      commands: ["fetch:h1"],
    },
    {
      name: "a host that has the image is staged and switched at once, with its healthy deadline",
      record: r3,
      obs: fleetObs(r3, { h1: { hasImage: true } }),
      now: T0,
      commands: ["switch:h1", `fetch:${a}`, `fetch:${b}`],
      hosts: { h1: "switching" },
      nextWakeAt: T0 + 5 * MIN,
      check: (res) =>
        expect(res.rollout.hosts.h1).toMatchObject({ switchedAt: T0, deadlineAt: T0 + 5 * MIN }),
    },
    {
      name: "a fetch that succeeded stages the host (progress) and switches it",
      record: r3fetching,
      obs: fleetObs(r3, { h1: { fetch: fetched(1) } }),
      now: t,
      commands: ["switch:h1"],
      check: (res) => expect(res.rollout.progressDeadlineAt).toBe(t + 10 * MIN),
    },
    {
      name: "a failed fetch is retried with a new attempt",
      record: r3fetching,
      obs: fleetObs(r3, { h1: { fetch: { ...fetched(1), state: "failed", reason: "reset" } } }),
      now: t,
      commands: ["fetch:h1"],
      hosts: { h1: "fetching" },
      check: (res) => {
        expect(res.commands[0]).toEqual({ kind: "fetch", hostId: "h1", attempt: 2 });
        expect(res.rollout.hosts.h1?.fetchAttempts).toBe(2);
      },
    },
    {
      name: "a fetch that met a bad peer stages the host, names the peer on it once, with an event",
      record: r3fetching,
      obs: fleetObs(r3, {
        h1: {
          fetch: {
            ...fetched(1),
            badPeers: [
              { hostId: b, reason: "chunk 5: sha256 mismatch" },
              { hostId: b, reason: "chunk 9: sha256 mismatch" },
            ],
          },
        },
      }),
      now: t,
      commands: ["switch:h1"],
      hosts: { h1: "switching" },
      check: (res) => {
        expect(res.rollout.hosts.h1?.badPeers).toEqual([{ hostId: b, reason: "chunk 5: sha256 mismatch" }]);
        const events = res.events.filter((e) => e.kind === "bad-peer");
        expect(events).toEqual([
          {
            at: t,
            kind: "bad-peer",
            hostId: "h1",
            wave: 0,
            message: `host h1: peer ${b} served a chunk that did not match the signed manifest (chunk 5: sha256 mismatch); not used again for this transfer`,
          },
        ]);
        // Observed again, the same result adds nothing.
        const again = plan(
          res.rollout,
          fleetObs(r3, { h1: { fetch: { ...fetched(1), badPeers: [{ hostId: b, reason: "x" }] } } }),
          t,
        );
        expect(again.events.filter((e) => e.kind === "bad-peer")).toEqual([]);
      },
    },
    {
      name: "a failed fetch's bad peer is recorded, the retry's new one added after it",
      record: withHosts(r3fetching, {
        h1: { fetchAttempts: 2, badPeers: [{ hostId: a, reason: "chunk 1" }] },
      }),
      obs: fleetObs(r3, {
        h1: {
          fetch: {
            ...fetched(2),
            state: "failed",
            reason: "reset",
            badPeers: [
              { hostId: a, reason: "chunk 3" },
              { hostId: b, reason: "chunk 4" },
            ],
          },
        },
      }),
      now: t,
      commands: ["fetch:h1"],
      hosts: { h1: "fetching" },
      check: (res, input) => {
        expect(res.rollout.hosts.h1?.badPeers).toEqual([
          { hostId: a, reason: "chunk 1" },
          { hostId: b, reason: "chunk 4" },
        ]);
        expect(res.events.filter((e) => e.kind === "bad-peer").map((e) => e.message)).toEqual([
          expect.stringContaining(`peer ${b} served`),
        ]);
        // The planner replaces the list, never changes the input's in place.
        expect(input.hosts.h1?.badPeers).toEqual([{ hostId: a, reason: "chunk 1" }]);
      },
    },
    {
      name: "the result of an older fetch attempt is ignored",
      record: withHosts(r3fetching, { h1: { fetchAttempts: 2 } }),
      obs: fleetObs(r3, { h1: { fetch: { ...fetched(1), state: "failed", reason: "reset" } } }),
      now: t,
      commands: [],
      check: (res, input) => expect(res.rollout).toEqual(input),
    },
    {
      name: "a third failed fetch fails the host: the canary fails, nothing to roll back, version bad",
      record: withHosts(r3fetching, { h1: { fetchAttempts: 3 } }),
      obs: fleetObs(r3, { h1: { fetch: { ...fetched(3), state: "failed", reason: "disk full" } } }),
      now: t,
      commands: [],
      state: "failed",
      hosts: { h1: "failed" },
      mark: "bad",
      check: (res) => expect(res.rollout.hosts.h1?.reason).toBe("fetch failed 3 times: disk full"),
    },
    {
      name: "a switched host healthy for minHealthy is healthy: the canary awaits promotion (manual)",
      record: canarySwitched,
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(t - 20 * SEC) } }),
      now: t,
      commands: [],
      state: "awaiting-promotion",
      hosts: { h1: "healthy" },
      nextWakeAt: null,
      check: (res) => {
        expect(res.rollout.hosts.h1?.healthyAt).toBe(t);
        expect(res.events.map((e) => e.kind)).toContain("wave-completed");
      },
    },
    {
      name: "with promote auto the canary bakes for canaryBake",
      record: withRollout(canarySwitched, { strategy: { ...r3.strategy, promote: "auto" } }),
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(t - 20 * SEC) } }),
      now: t,
      commands: [],
      state: "running",
      nextWakeAt: t + 5 * MIN,
      check: (res) =>
        expect(res.rollout).toMatchObject({ phase: "baking", bakeUntil: t + 5 * MIN, currentWave: 0 }),
    },
    {
      name: "healthy for less than minHealthy: verifying, waking when minHealthy is reached",
      record: canarySwitched,
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(t - 3 * SEC) } }),
      now: t,
      commands: [],
      hosts: { h1: "verifying" },
      nextWakeAt: t + 7 * SEC,
    },
    {
      name: "verifying and unhealthy: not failed, its healthy deadline decides",
      record: withHosts(r3fetching, { h1: switched(T0) }),
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(null, "unhealthy") } }),
      now: t,
      commands: [],
      hosts: { h1: "verifying" },
      nextWakeAt: T0 + 5 * MIN,
    },
    {
      name: "flapping is not progress: a healthy streak shorter than minHealthy leaves the progress deadline",
      record: withHosts(r3fetching, { h1: switched(T0) }),
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(t - 4 * SEC) } }),
      now: t,
      commands: [],
      hosts: { h1: "verifying" },
      check: (res, input) => {
        expect(res.rollout.progressDeadlineAt).toBe(input.progressDeadlineAt);
        expect(res.rollout).toEqual(input);
      },
    },
    {
      name: "past its healthy deadline a host fails and is rolled back; the canary fails",
      record: withHosts(r3fetching, { h1: switched(T0) }),
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(null, "unhealthy") } }),
      now: T0 + 5 * MIN,
      commands: ["rollback:h1"],
      state: "rolling-back",
      hosts: { h1: "rolling-back" },
      mark: null,
      // The rollback's own clock: twice healthyDeadline (it may wait for the host's local rollback).
      nextWakeAt: T0 + 15 * MIN,
      check: (res) => {
        expect(res.rollout.hosts.h1?.reason).toBe("healthy deadline exceeded");
        expect(res.rollout.rollbackOutcome).toBe("failed");
        expect(res.events.map((e) => e.kind)).toContain("deadline-exceeded");
      },
    },
    {
      name: "a switch the agent already rolled back: the canary fails via rolling-back, version bad",
      record: canarySwitched,
      obs: fleetObs(r3, {
        h1: { switch: { state: "failed", rolledBack: true, reason: "GILD_HEALTH_FAILED: web" } },
      }),
      now: t,
      commands: [],
      state: "failed",
      hosts: { h1: "rolled-back", [a]: "fetching", [b]: "fetching" },
      mark: "bad",
      check: (res) => {
        expect(res.rollout.hosts.h1?.reason).toBe("switch failed: GILD_HEALTH_FAILED: web");
        const rolloutMoves = res.events.filter((e) => e.kind === "rollout-state").map((e) => e.message);
        expect(rolloutMoves[0]).toMatch(/running -> rolling-back/);
        expect(rolloutMoves[1]).toMatch(/rolling-back -> failed/);
        expect(res.rollout.finishedAt).toBe(t);
      },
    },
    {
      name: "a switch whose local rollback did not turn healthy: rollback-failed, no rollback command, version bad",
      record: canarySwitched,
      obs: fleetObs(r3, {
        h1: {
          switch: {
            state: "failed",
            rolledBack: true,
            rollbackUnhealthy: true,
            reason: "exit 3; the generation it went back to is not healthy either: probe refused",
          },
        },
      }),
      now: t,
      commands: [],
      state: "failed",
      hosts: { h1: "rollback-failed", [a]: "fetching", [b]: "fetching" },
      mark: "bad",
      check: (res) => {
        expect(res.rollout.hosts.h1?.reason).toContain("not healthy either: probe refused");
        expect(res.events.at(-1)?.message).toMatch(/could not be rolled back: h1/);
      },
    },
    {
      name: "a failed switch not rolled back by the agent gets a rollback command",
      record: canarySwitched,
      obs: fleetObs(r3, { h1: { switch: { state: "failed", rolledBack: false, reason: "start failed" } } }),
      now: t,
      commands: ["rollback:h1"],
      state: "rolling-back",
      hosts: { h1: "rolling-back" },
    },
    {
      name: "a canary without a previous generation pauses the rollout before any switch",
      record: r3,
      obs: fleetObs(r3, { h1: { hasImage: true, rollbackReady: false } }),
      now: T0,
      commands: [],
      state: "paused",
      hosts: { h1: "staged" },
      nextWakeAt: null,
      check: (res) => {
        expect(res.rollout.reason).toMatch(/^h1 has no previous generation/);
        expect(rolloutReasonCode(res.rollout)).toBe("GILD_ROLLBACK_NOT_READY");
        expect(res.rollout).toMatchObject({
          pauseCause: "rollback-not-ready",
          pausedAt: T0,
          resumeState: "running",
        });
      },
    },
  ]);
});

// Seven hosts: canary h1, then three waves of two.
const r7 = newRollout(7, { canary: ["h1"], waves: [2] });
const [w1, w2, w3] = [r7.waves[1], r7.waves[2], r7.waves[3]] as [string[], string[], string[]];
const r5 = newRollout(5, { canary: ["h1"], waves: [2] });
const [v1a, v1b] = r5.waves[1] as [string, string];
const [v2a, v2b] = r5.waves[2] as [string, string];
const bakeOver = withHosts(
  withRollout(atWave(r5, 2), { currentWave: 1, phase: "baking", bakeUntil: t, progressDeadlineAt: null }),
  { [v2a]: { state: "staged", fetchAttempts: 1 }, [v2b]: { state: "staged", fetchAttempts: 1 } },
);
const baking = withRollout(
  withHosts(atWave(r5, 1), {
    [v1a]: { ...switched(T0), state: "healthy" },
    [v1b]: { ...switched(T0), state: "healthy" },
  }),
  { phase: "baking", bakeUntil: t + 30 * SEC, progressDeadlineAt: null },
);

describe("planRollout: a wave's start and the next wave's prefetch", () => {
  it("the wave's switches go out alone; the prefetch follows in the step after, planned at once", () => {
    const baked = withHosts(
      withRollout(atWave(r7, 2), { currentWave: 1, phase: "baking", bakeUntil: t, progressDeadlineAt: null }),
      Object.fromEntries(w2.map((id) => [id, { state: "staged" as const, fetchAttempts: 1 }])),
    );
    const obs = (r: RolloutRecord) => obsFor(r, Object.fromEntries(w2.map((id) => [id, { hasImage: true }])));
    const start = plan(baked, obs(baked), t);
    expect(start.events.map((e) => e.kind)).toContain("wave-started");
    expect(kinds(start.commands)).toEqual(w2.map((id) => `switch:${id}`).sort());
    for (const id of w3) expect(start.rollout.hosts[id]?.state).toBe("pending");
    expect(start.nextWakeAt).toBe(t + 1);
    // The step after, with nothing new observed: wave 3 prefetches, and that is all.
    const after = plan(start.rollout, obs(start.rollout), t + 1);
    expect(kinds(after.commands)).toEqual(w3.map((id) => `fetch:${id}`).sort());
    for (const id of w3) expect(after.rollout.hosts[id]?.state).toBe("fetching");
    expect(after.nextWakeAt).not.toBe(t + 2);
    const again = plan(after.rollout, obs(after.rollout), t + 1);
    expect(again.commands).toEqual([]);
    expect(again.rollout).toEqual(after.rollout);
  });
});

describe("planRollout: a wave of more hosts than SWITCHES_AT_WAVE_START", () => {
  it("its start switches the first of them; the step 1 ms later switches the rest", () => {
    const size = SWITCHES_AT_WAVE_START + 3;
    const big = newRollout(size + 1, { canary: ["h1"], waves: ["100%"], prefetch: false });
    const wave = big.waves[1] as string[];
    expect(wave).toHaveLength(size);
    const baked = withHosts(
      withRollout(atWave(big, 1), {
        currentWave: 0,
        phase: "baking",
        bakeUntil: t,
        progressDeadlineAt: null,
      }),
      Object.fromEntries(wave.map((id) => [id, { state: "staged" as const, fetchAttempts: 1 }])),
    );
    const obs = (r: RolloutRecord) =>
      obsFor(r, Object.fromEntries(wave.map((id) => [id, { hasImage: true }])));
    const start = plan(baked, obs(baked), t);
    expect(start.events.map((e) => e.kind)).toContain("wave-started");
    expect(kinds(start.commands)).toEqual(
      wave
        .slice(0, SWITCHES_AT_WAVE_START)
        .map((id) => `switch:${id}`)
        .sort(),
    );
    expect(start.nextWakeAt).toBe(t + 1);
    // Planned again at the same instant: no more.
    const same = plan(start.rollout, obs(start.rollout), t);
    expect(same.commands).toEqual([]);
    const after = plan(start.rollout, obs(start.rollout), t + 1);
    expect(kinds(after.commands)).toEqual(
      wave
        .slice(SWITCHES_AT_WAVE_START)
        .map((id) => `switch:${id}`)
        .sort(),
    );
    for (const id of wave) expect(after.rollout.hosts[id]?.state).toBe("switching");
    expect(after.nextWakeAt).not.toBe(t + 2);
  });
});

describe("planRollout: waves", () => {
  runRows([
    {
      name: "prefetch fetches the next wave while the current deploys, and not the one after",
      record: atWave(r7, 1),
      obs: (r) => obsFor(r),
      now: t,
      commands: [...w1, ...w2].map((id) => `fetch:${id}`),
      check: (res) => {
        for (const id of w3) expect(res.rollout.hosts[id]?.state).toBe("pending");
      },
    },
    {
      name: "a host of the next wave that fails readiness pauses the wave before it switches",
      record: atWave(r5, 1),
      obs: (r) => obsFor(r, { [v1b]: { rollbackReady: false } }),
      now: t,
      commands: [],
      state: "paused",
      check: (res) => expect(res.rollout.reason).toBe(`${v1b} has no previous generation to roll back to`),
    },
    {
      name: "maxParallel bounds the hosts switching at once",
      record: newRollout(5, { canary: 0, waves: ["100%"], maxParallel: 2 }),
      obs: fleetObs(r5, {}, { hasImage: true }),
      now: T0,
      commands: (() => {
        const r = newRollout(5, { canary: 0, waves: ["100%"], maxParallel: 2 });
        return (r.waves[0] as string[]).slice(0, 2).map((id) => `switch:${id}`);
      })(),
    },
    (() => {
      const r = newRollout(5, { canary: 0, waves: ["100%"], maxParallel: 2 });
      const [first, second, third] = r.waves[0] as string[];
      const staged = Object.fromEntries(
        (r.waves[0] as string[]).map((id) => [id, { state: "staged" as const }]),
      );
      return {
        name: "maxParallel: a slot frees when a host is healthy, the next staged host switches",
        record: withHosts(r, {
          ...staged,
          [first as string]: switched(T0),
          [second as string]: switched(T0),
        }),
        obs: fleetObs(r, { [first as string]: { switch: ok, apps: onTarget(LONG_AGO) } }, { hasImage: true }),
        now: t,
        commands: [`switch:${third}`],
        hosts: {
          [first as string]: "healthy",
          [second as string]: "verifying",
          [third as string]: "switching",
        },
      };
    })(),
    {
      name: "an offline staged host is not switched",
      record: withHosts(atWave(r5, 1), { [v1a]: { state: "staged" }, [v1b]: { state: "staged" } }),
      obs: (r) => obsFor(r, { [v1a]: { hasImage: true, online: false }, [v1b]: { hasImage: true } }),
      now: t,
      commands: [`switch:${v1b}`, `fetch:${v2a}`, `fetch:${v2b}`],
    },
    {
      name: "a healthy wave bakes (the next wave keeps prefetching); wakes at the bake end",
      record: withHosts(atWave(r5, 1), { [v1a]: switched(T0), [v1b]: switched(T0) }),
      obs: (r) => obsFor(r, { [v1a]: { apps: onTarget(LONG_AGO) }, [v1b]: { apps: onTarget(LONG_AGO) } }),
      now: t,
      commands: [`fetch:${v2a}`, `fetch:${v2b}`],
      state: "running",
      nextWakeAt: t + MIN,
      check: (res) =>
        expect(res.rollout).toMatchObject({ phase: "baking", bakeUntil: t + MIN, progressDeadlineAt: null }),
    },
    {
      name: "when the bake ends the next wave starts, switching its prefetched hosts",
      record: bakeOver,
      obs: (r) => obsFor(r, { [v2a]: { hasImage: true }, [v2b]: { hasImage: true } }),
      now: t,
      commands: [`switch:${v2a}`, `switch:${v2b}`],
      check: (res) => {
        expect(res.rollout).toMatchObject({
          currentWave: 2,
          phase: "deploying",
          progressDeadlineAt: t + 10 * MIN,
        });
        expect(res.events.map((e) => e.kind)).toContain("wave-started");
      },
    },
    {
      name: "the last wave healthy: succeeded without a bake, version stable",
      record: withHosts(atWave(r5, 2), { [v2a]: switched(T0), [v2b]: switched(T0) }),
      obs: (r) => obsFor(r, { [v2a]: { apps: onTarget(LONG_AGO) }, [v2b]: { apps: onTarget(LONG_AGO) } }),
      now: t,
      commands: [],
      state: "succeeded",
      mark: "stable",
      nextWakeAt: null,
      check: (res) => expect(res.rollout).toMatchObject({ finishedAt: t, updatedAt: t, bakeUntil: null }),
    },
    {
      name: "a host counted healthy that turns unhealthy while its wave bakes fails; the wave fails and rolls back",
      record: baking,
      obs: (r) => obsFor(r, { [v1a]: { apps: onTarget(null, "unhealthy") } }),
      now: t,
      commands: [`rollback:${v1a}`, "rollback:h1"],
      state: "rolling-back",
      hosts: { [v1a]: "rolling-back", [v1b]: "healthy" },
      check: (res) => {
        expect(res.rollout.rollbackParallel).toBe(2);
        expect(res.rollout.hosts[v1b]?.rollbackPending).toBe(true);
      },
    },
    {
      name: "awaiting promotion, a canary that turns unhealthy is a canary failure",
      record: withRollout(withHosts(r3fetching, { h1: { ...switched(T0), state: "healthy" } }), {
        state: "awaiting-promotion",
        phase: "baking",
        progressDeadlineAt: null,
      }),
      obs: fleetObs(r3, { h1: { switch: ok, apps: onTarget(null, "unhealthy") } }),
      now: t,
      commands: ["rollback:h1"],
      state: "rolling-back",
      check: (res) => expect(res.rollout.reason).toMatch(/^canary wave failed/),
    },
  ]);
});

/** Canary h1 healthy, wave 1 of `hosts - 1` hosts all switching; `failing` of them report a failed switch. */
function waveWithFailures(raw: RawStrategy, hosts: number, failing: number, rolledBack = true) {
  const r = newRollout(hosts, { canary: ["h1"], waves: ["100%"], ...raw });
  const wave = r.waves[1] as string[];
  const record = withHosts(
    atWave(r, 1),
    Object.fromEntries(wave.map((id) => [id, switched(t, "switching")])),
  );
  const fail = { switch: { state: "failed" as const, rolledBack, reason: "GILD_HEALTH_FAILED" } };
  const obs = obsFor(record, Object.fromEntries(wave.slice(0, failing).map((id) => [id, fail])));
  return { record, obs, wave };
}

describe("planRollout: failure budgets and onFailure", () => {
  const budgetRow = (
    name: string,
    raw: RawStrategy,
    hosts: number,
    failing: number,
    state: RolloutState,
  ): Row => {
    const { record, obs } = waveWithFailures(raw, hosts, failing);
    return {
      name,
      record,
      obs,
      now: t,
      commands: [],
      state,
      check: (res) => {
        if (state === "rolling-back") {
          // Every switched host (the canary and the wave's still switching ones) rolls back, half at a time.
          expect(res.commands.every((c) => c.kind === "rollback")).toBe(true);
          expect(res.commands.length).toBe(res.rollout.rollbackParallel);
        }
      },
    };
  };
  const rows: Row[] = [
    budgetRow("maxFailures 1: one failure of four keeps going", { maxFailures: 1 }, 5, 1, "running"),
    budgetRow(
      "maxFailures 1: two failures fail the wave -> rollback",
      { maxFailures: 1 },
      5,
      2,
      "rolling-back",
    ),
    budgetRow("maxFailures 50% of 4 tolerates 2", { maxFailures: "50%" }, 5, 2, "running"),
    budgetRow("maxFailures 50% of 4 fails at 3", { maxFailures: "50%" }, 5, 3, "rolling-back"),
    budgetRow("maxFailures 25% of 3 rounds down to none", { maxFailures: "25%" }, 4, 1, "rolling-back"),
    budgetRow("maxFailures 0 by default", {}, 3, 1, "rolling-back"),
  ];
  // The budget rows above only set `state`; commands vary, so compare them loosely.
  it.each(rows.map((row) => [row.name, row] as const))("%s", (_name, row) => {
    const obs = typeof row.obs === "function" ? row.obs(row.record) : row.obs;
    const res = plan(row.record, obs, row.now);
    expect(res.rollout.state).toBe(row.state);
    row.check?.(res, row.record);
    expect(plan(res.rollout, obs, row.now).commands).toEqual([]);
  });

  it("onFailure rollback: rolling back every switched host, bounded, then failed and bad", () => {
    const { record, obs, wave } = waveWithFailures({ rollbackMaxParallel: 1 }, 4, 1);
    const res = plan(record, obs, t);
    expect(res.rollout).toMatchObject({
      state: "rolling-back",
      rollbackOutcome: "failed",
      rollbackParallel: 1,
    });
    expect(res.commands).toHaveLength(1);
    const toRollBack = ["h1", ...wave.slice(1)];
    expect(toRollBack.filter((id) => res.rollout.hosts[id]?.rollbackPending).length).toBe(
      toRollBack.length - 1,
    );
    expect(res.rollout.hosts[wave[0] as string]?.state).toBe("rolled-back");
  });

  runRows([
    (() => {
      const { record, obs, wave } = waveWithFailures({ onFailure: "pause" }, 4, 1, false);
      return {
        name: "onFailure pause: paused with the reason; only the failed host's rollback is sent",
        record,
        obs,
        now: t,
        commands: [`rollback:${wave[0]}`],
        state: "paused" as const,
        nextWakeAt: null,
        check: (res: PlanResult) => {
          expect(res.rollout).toMatchObject({
            pauseCause: "wave-failed",
            pausedAt: t,
            resumeState: "running",
          });
          expect(res.rollout.reason).toMatch(/^wave 1 failed: 1 of 3 hosts failed, 0 allowed/);
          expect(res.markVersion).toBeNull();
        },
      };
    })(),
    (() => {
      const r = newRollout(5, { canary: ["h1"], waves: ["100%"], onFailure: "pause" });
      const [x, y, z, w] = r.waves[1] as [string, string, string, string];
      const record = withHosts(atWave(r, 1, T0), {
        [x]: { ...switched(T0), state: "healthy" },
        [y]: switched(T0 + 6 * MIN),
        [z]: { state: "staged" },
        [w]: { state: "fetching", fetchAttempts: 1 },
      });
      return {
        name: "progress deadline: hosts not healthy fail (switched ones get a rollback), then onFailure",
        record,
        obs: (r) => obsFor(r, { [z]: { online: false, hasImage: true }, [w]: { online: false } }),
        now: T0 + 10 * MIN,
        commands: [`rollback:${y}`],
        state: "paused" as const,
        hosts: { [x]: "healthy", [y]: "rolling-back", [z]: "failed", [w]: "failed" },
        check: (res: PlanResult) => {
          expect(res.rollout.hosts[z]?.reason).toBe("progress deadline exceeded");
          expect(res.rollout.hosts[y]?.reason).toBe("progress deadline exceeded");
          expect(res.events.some((e) => e.kind === "deadline-exceeded" && e.wave === 1)).toBe(true);
        },
      };
    })(),
  ]);
});

describe("planRollout: clocks", () => {
  runRows([
    {
      name: "nextWakeAt is the earliest clock: a minHealthy completion before host and progress deadlines",
      record: withHosts(atWave(r5, 1), {
        [v1a]: switched(t - 4 * MIN),
        [v1b]: switched(t - 4 * MIN + 30 * SEC, "switching"),
      }),
      obs: (r) => obsFor(r, { [v1a]: { apps: onTarget(t - 4 * SEC) } }),
      now: t,
      commands: [`fetch:${v2a}`, `fetch:${v2b}`],
      nextWakeAt: t + 6 * SEC,
    },
    {
      name: "nextWakeAt is the earliest clock: a host's healthy deadline before the progress deadline",
      record: withHosts(atWave(r5, 1), {
        [v1a]: switched(t - 4 * MIN),
        [v1b]: switched(t - 4 * MIN + 30 * SEC, "switching"),
      }),
      obs: (r) => obsFor(r),
      now: t,
      commands: [`fetch:${v2a}`, `fetch:${v2b}`],
      nextWakeAt: t + MIN,
    },
    {
      name: "paused: a switch result is recorded, but no command and no clock fires",
      record: withRollout(withHosts(r3fetching, { h1: switched(T0, "switching") }), {
        state: "paused",
        pausedAt: T0 + SEC,
        resumeState: "running",
        pauseCause: "operator",
      }),
      obs: fleetObs(r3, {
        h1: { switch: ok, apps: onTarget(null, "unhealthy") },
        [a]: { fetch: fetched(1) },
      }),
      now: T0 + 30 * MIN,
      commands: [],
      state: "paused",
      hosts: { h1: "verifying", [a]: "staged" },
      nextWakeAt: null,
    },
    {
      name: "aborted: results are recorded, nothing is sent",
      record: withRollout(withHosts(r3, { h1: { state: "staged" } }), { state: "aborted", finishedAt: T0 }),
      obs: fleetObs(r3, { h1: { hasImage: true } }),
      now: t,
      commands: [],
      state: "aborted",
      nextWakeAt: null,
    },
    {
      name: "a terminal rollout comes back as it was",
      record: withRollout(r3, { state: "succeeded", finishedAt: T0 }),
      obs: fleetObs(r3, { h1: { hasImage: true } }),
      now: t,
      commands: [],
      check: (res, input) =>
        expect(res).toEqual({
          rollout: input,
          commands: [],
          events: [],
          markVersion: null,
          nextWakeAt: null,
        }),
    },
  ]);
});

describe("planRollout: rolling back", () => {
  const healthyAll = (r: RolloutRecord, outcome: "failed" | "rolled-back" = "rolled-back") =>
    withRollout(
      withHosts(
        r,
        Object.fromEntries(
          Object.keys(r.hosts).map((id) => [id, { state: "healthy" as const, switchedAt: T0 }]),
        ),
      ),
      { state: "rolling-back", rollbackOutcome: outcome, rollbackParallel: 2, progressDeadlineAt: null },
    );
  const ids = r5.waves.flat();
  const pendingAll = Object.fromEntries(ids.map((id) => [id, { rollbackPending: true }]));

  runRows([
    {
      name: "sends at most rollbackParallel rollbacks at once, counting those in flight; no fetch, no switch",
      record: withHosts(healthyAll(r5), {
        ...pendingAll,
        [ids[0] as string]: { state: "rolling-back", rollbackPending: false, deadlineAt: t + MIN },
      }),
      obs: (r) => obsFor(r),
      now: t,
      commands: [`rollback:${ids[1]}`],
      nextWakeAt: t + MIN,
    },
    {
      name: "a queued host whose switch fails and is rolled back by the agent gets no rollback command",
      record: withHosts(healthyAll(r5), {
        [ids[0] as string]: { state: "switching", rollbackPending: true, deadlineAt: t + MIN },
      }),
      obs: (r) =>
        obsFor(r, { [ids[0] as string]: { switch: { state: "failed", rolledBack: true, reason: "x" } } }),
      now: t,
      commands: [],
      state: "rolled-back",
      hosts: { [ids[0] as string]: "rolled-back" },
      check: (res) => expect(res.rollout.hosts[ids[0] as string]?.rollbackPending).toBe(false),
    },
    {
      name: "a rollback that does not complete within twice healthyDeadline fails that host's rollback",
      record: withHosts(healthyAll(r5), { [ids[0] as string]: { state: "rolling-back", deadlineAt: t } }),
      obs: (r) => obsFor(r),
      now: t,
      commands: [],
      state: "rolled-back",
      mark: "bad",
      check: (res) => {
        expect(res.rollout.hosts[ids[0] as string]).toMatchObject({
          state: "rollback-failed",
          reason: "rollback did not complete within 10m",
        });
        const last = res.events.at(-1);
        expect(last?.message).toMatch(/could not be rolled back: h\d/);
      },
    },
    {
      name: "a rollback command that fails: rollback-failed with the agent's reason, counted when rolling back ends",
      record: withHosts(healthyAll(r5, "failed"), {
        [ids[0] as string]: { state: "rolling-back", deadlineAt: t + MIN },
      }),
      obs: (r) =>
        obsFor(r, {
          [ids[0] as string]: {
            rollback: { state: "failed", rolledBack: false, rollbackUnhealthy: true, reason: "not healthy" },
          },
        }),
      now: t,
      commands: [],
      state: "failed",
      mark: "bad",
      check: (res) => {
        expect(res.rollout.hosts[ids[0] as string]).toMatchObject({
          state: "rollback-failed",
          reason: "rollback failed: not healthy",
        });
        expect(res.events.at(-1)?.message).toMatch(/could not be rolled back/);
      },
    },
    {
      name: "done when every host is back: the outcome state (failed after a failure), version bad",
      record: withHosts(healthyAll(r5, "failed"), {
        [ids[0] as string]: { state: "rolling-back", deadlineAt: t + MIN },
      }),
      obs: (r) =>
        obsFor(r, {
          [ids[0] as string]: {
            rollback: ok,
            apps: [{ name: "web", version: 1, health: "healthy", healthySince: t }],
          },
        }),
      now: t,
      commands: [],
      state: "failed",
      hosts: { [ids[0] as string]: "rolled-back" },
      mark: "bad",
    },
  ]);
});
