import {
  abortRollout,
  type GildError,
  type HostStep,
  pauseRollout,
  planRollout,
  promoteRollout,
  type RolloutRecord,
  type RolloutState,
  resumeRollout,
  rollbackRollout,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import { fleetObs, frozen, MIN, newRollout, SEC, T0, withHosts, withRollout } from "./rollout-fixtures.js";

const now = T0 + 10 * MIN;
const base = newRollout(5, { canary: ["h1"], waves: [2] });
const [w1a, w1b] = base.waves[1] as [string, string];
const [w2a, w2b] = base.waves[2] as [string, string];

/** The rollout in `state`, with the canary healthy and wave 1 in progress. */
function inState(state: RolloutState, patch: Partial<RolloutRecord> = {}): RolloutRecord {
  const hosts = withHosts(base, {
    h1: { state: "healthy", switchedAt: T0, healthyAt: T0 + MIN },
    [w1a]: { state: "verifying", switchedAt: T0 + 2 * MIN, deadlineAt: T0 + 7 * MIN },
    [w1b]: { state: "staged" },
  });
  return frozen(withRollout(hosts, { state, currentWave: 1, ...patch }));
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as GildError).code;
  }
  return "ok";
}

const ALL: RolloutState[] = [
  "running",
  "paused",
  "awaiting-promotion",
  "succeeded",
  "failed",
  "aborted",
  "rolling-back",
  "rolled-back",
];

describe("rollout verbs: which states allow which verb", () => {
  const allowed: Record<string, RolloutState[]> = {
    pause: ["running", "awaiting-promotion"],
    resume: ["paused"],
    promote: ["awaiting-promotion"],
    abort: ["running", "paused", "awaiting-promotion", "rolling-back"],
    rollback: ["succeeded", "failed", "aborted", "paused"],
  };
  const verbs: Record<string, (r: RolloutRecord) => RolloutRecord> = {
    pause: (r) => pauseRollout(r, now),
    resume: (r) => resumeRollout(r, now),
    promote: (r) => promoteRollout(r, now),
    abort: (r) => abortRollout(r, now),
    rollback: (r) => rollbackRollout(r, now),
  };
  const rows = Object.keys(verbs).flatMap((verb) =>
    ALL.map((state) => [verb, state, allowed[verb]?.includes(state) ? "ok" : "GILD_ROLLOUT_STATE"] as const),
  );
  it.each(rows)("%s in %s -> %s", (verb, state, expected) => {
    const record = inState(state, {
      pausedAt: state === "paused" ? now - MIN : null,
      resumeState: "running",
    });
    expect(codeOf(() => verbs[verb]?.(record))).toBe(expected);
  });

  it("refusals carry a hint", () => {
    try {
      resumeRollout(inState("running"), now);
    } catch (err) {
      expect((err as GildError).hint).toBeTruthy();
      expect((err as GildError).message).toBe("cannot resume rollout r1: it is running");
    }
  });
});

describe("pause and resume", () => {
  it("pause records when and what to return to; the input is not changed", () => {
    const input = inState("awaiting-promotion");
    const paused = pauseRollout(input, now);
    expect(paused).toMatchObject({
      state: "paused",
      pausedAt: now,
      resumeState: "awaiting-promotion",
      pauseCause: "operator",
      updatedAt: now,
    });
    expect(input.state).toBe("awaiting-promotion");
    expect(resumeRollout(paused, now + MIN).state).toBe("awaiting-promotion");
  });

  it("resume shifts every clock by the length of the pause", () => {
    const running = inState("running", { progressDeadlineAt: now + 3 * MIN, bakeUntil: null });
    const paused = pauseRollout(running, now);
    const resumed = resumeRollout(paused, now + 45 * MIN);
    expect(resumed).toMatchObject({
      state: "running",
      pausedAt: null,
      resumeState: null,
      pauseCause: null,
      reason: null,
      progressDeadlineAt: now + 48 * MIN,
    });
    expect(resumed.hosts[w1a]?.deadlineAt).toBe(T0 + 7 * MIN + 45 * MIN);
    const baking = pauseRollout(inState("running", { phase: "baking", bakeUntil: now + 20 * SEC }), now);
    expect(resumeRollout(baking, now + MIN).bakeUntil).toBe(now + 80 * SEC);
  });

  it("resume after a wave failure accepts its failed hosts and gives the wave a fresh progress deadline", () => {
    const failedWave = withHosts(
      inState("paused", {
        pausedAt: now,
        resumeState: "running",
        pauseCause: "wave-failed",
        reason: "wave 1 failed",
        progressDeadlineAt: null,
      }),
      { [w1b]: { state: "rolled-back", reason: "switch failed" }, [w1a]: { deadlineAt: now + 2 * MIN } },
    );
    const resumed = resumeRollout(failedWave, now + 5 * MIN);
    expect(resumed.acceptedFailures).toEqual([w1b]);
    expect(resumed.progressDeadlineAt).toBe(now + 15 * MIN);
    // The accepted failure no longer fails the wave: planning goes on.
    const obs = fleetObs(resumed, {
      h1: { apps: [{ name: "web", version: 2, health: "healthy", healthySince: T0 }] },
      [w1a]: { switch: { state: "succeeded", rolledBack: false, reason: null } },
    });
    expect(planRollout(resumed, obs, now + 5 * MIN).rollout.state).toBe("running");
  });
});

describe("promote", () => {
  it("after the canary: running with the next wave and a fresh progress deadline", () => {
    const waiting = inState("awaiting-promotion", {
      currentWave: 0,
      phase: "baking",
      progressDeadlineAt: null,
    });
    expect(promoteRollout(waiting, now)).toMatchObject({
      state: "running",
      currentWave: 1,
      phase: "deploying",
      bakeUntil: null,
      progressDeadlineAt: now + 10 * MIN,
    });
  });

  it("while baking: ends the bake", () => {
    const baking = inState("running", { phase: "baking", bakeUntil: now + MIN, progressDeadlineAt: null });
    expect(promoteRollout(baking, now)).toMatchObject({
      currentWave: 2,
      phase: "deploying",
      bakeUntil: null,
    });
  });

  it("refuses while deploying, and when no wave is left", () => {
    expect(codeOf(() => promoteRollout(inState("running"), now))).toBe("GILD_ROLLOUT_STATE");
    const last = inState("running", { currentWave: 2, phase: "baking", bakeUntil: now });
    expect(codeOf(() => promoteRollout(last, now))).toBe("GILD_ROLLOUT_STATE");
  });
});

describe("abort", () => {
  it("ends the rollout where it is; the planner sends nothing afterwards", () => {
    const aborted = abortRollout(inState("running"), now);
    expect(aborted).toMatchObject({ state: "aborted", finishedAt: now, progressDeadlineAt: null });
    expect(aborted.hosts).toEqual(inState("running").hosts);
    const res = planRollout(aborted, fleetObs(aborted, {}, { hasImage: true }), now + 20 * MIN);
    expect(res.commands).toEqual([]);
    expect(res.nextWakeAt).toBeNull();
  });
});

describe("rollback", () => {
  const succeeded = frozen(
    withRollout(
      withHosts(
        base,
        Object.fromEntries(
          base.waves
            .flat()
            .map((id) => [id, { state: "healthy", switchedAt: T0, healthyAt: T0 } as Partial<HostStep>]),
        ),
      ),
      { state: "succeeded", finishedAt: now, currentWave: 2, phase: "baking", progressDeadlineAt: null },
    ),
  );

  it("queues every host on the target for a rollback; parallelism half the hosts by default", () => {
    const r = rollbackRollout(succeeded, now);
    expect(r).toMatchObject({
      state: "rolling-back",
      rollbackOutcome: "rolled-back",
      rollbackParallel: 3,
      finishedAt: null,
    });
    expect(Object.values(r.hosts).every((h) => h.rollbackPending)).toBe(true);
  });

  it.each<[string, number | null | undefined, number | null, number]>([
    ["the override", 4, null, 4],
    ["the strategy's rollbackMaxParallel", undefined, 2, 2],
    ["half the hosts, rounded up", undefined, null, 3],
    ["null override: the strategy's", null, 1, 1],
  ])("parallelism from %s", (_name, override, strategyMax, expected) => {
    const record = withRollout(succeeded, {
      strategy: { ...succeeded.strategy, rollbackMaxParallel: strategyMax },
    });
    expect(rollbackRollout(record, now, { maxParallel: override }).rollbackParallel).toBe(expected);
  });

  it("takes only hosts that run the target: switched ones, and failed ones still waiting for a rollback", () => {
    const mixed = withRollout(
      withHosts(succeeded, {
        h1: { state: "switching" },
        [w1a]: { state: "failed", rollbackPending: true },
        [w1b]: { state: "rolled-back" },
        [w2a]: { state: "pending", switchedAt: null },
        [w2b]: { state: "failed", rollbackPending: false, reason: "rollback failed: x" },
      }),
      { state: "aborted" },
    );
    const r = rollbackRollout(mixed, now);
    const queued = Object.values(r.hosts)
      .filter((h) => h.rollbackPending)
      .map((h) => h.hostId)
      .sort();
    expect(queued).toEqual(["h1", w1a].sort());
    expect(r.rollbackParallel).toBe(1);
  });

  it("from paused, host clocks are shifted by the pause", () => {
    const paused = withHosts(inState("paused", { pausedAt: now - 10 * MIN, resumeState: "running" }), {
      [w1a]: { state: "rolling-back", deadlineAt: now - 8 * MIN },
    });
    expect(rollbackRollout(paused, now).hosts[w1a]?.deadlineAt).toBe(now + 2 * MIN);
  });

  it("refuses a bad parallelism, and a rollout with nothing to roll back", () => {
    expect(codeOf(() => rollbackRollout(succeeded, now, { maxParallel: 0 }))).toBe("GILD_INVALID_SPEC");
    expect(codeOf(() => rollbackRollout(succeeded, now, { maxParallel: 1.5 }))).toBe("GILD_INVALID_SPEC");
    const nothing = withRollout(base, { state: "failed" });
    expect(codeOf(() => rollbackRollout(nothing, now))).toBe("GILD_ROLLOUT_STATE");
  });
});
