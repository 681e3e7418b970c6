// End-to-end sequences: the planner driving a simulated fleet, one second at a time. run() checks on every
// step that planning is idempotent, that the input is never mutated and that no host is switched twice.
import {
  abortRollout,
  type PlanResult,
  pauseRollout,
  promoteRollout,
  type RolloutEvent,
  type RolloutRecord,
  resumeRollout,
  rollbackRollout,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import { type HostBehaviour, MIN, newRollout, run, SEC, SimFleet, T0 } from "./rollout-fixtures.js";

const at = (events: RolloutEvent[], pred: (e: RolloutEvent) => boolean) => events.find(pred)?.at;
const rollingBack = (r: RolloutRecord) =>
  Object.values(r.hosts).filter((h) => h.state === "rolling-back").length;

/** Run to awaiting-promotion, promote, and run on until the rollout stops. */
function throughPromotion(
  fleet: SimFleet,
  record: RolloutRecord,
  onStep?: (res: PlanResult, now: number) => void,
) {
  const first = run(fleet, record, T0, { stop: (r) => r.state === "awaiting-promotion", onStep });
  expect(first.rollout.state).toBe("awaiting-promotion");
  return run(fleet, promoteRollout(first.rollout, first.now + SEC), first.now + SEC, { onStep });
}

describe("rollout simulation: the good path", () => {
  it("canary, manual promotion, waves with bakes, succeeded and stable; every host switched once", () => {
    const record = newRollout(9);
    const [canary, wave1, wave2] = record.waves as [string[], string[], string[]];
    expect([canary.length, wave1.length, wave2.length]).toEqual([1, 2, 6]);
    const fleet = new SimFleet(record);

    const first = run(fleet, record, T0, { stop: (r) => r.state === "awaiting-promotion" });
    expect(first.rollout.state).toBe("awaiting-promotion");
    expect(fleet.sentKinds("switch")).toEqual(canary);
    // Prefetch: the canary and the next wave downloaded; the wave after that did not.
    expect(fleet.sentKinds("fetch").sort()).toEqual([...canary, ...wave1].sort());

    const done = run(fleet, promoteRollout(first.rollout, first.now + SEC), first.now + SEC);
    expect(done.rollout.state).toBe("succeeded");
    expect(fleet.marks).toEqual(["stable"]);
    expect(fleet.sentKinds("switch").sort()).toEqual(record.waves.flat().sort());
    expect(fleet.sentKinds("rollback")).toEqual([]);
    expect(Object.values(done.rollout.hosts).every((h) => h.state === "healthy")).toBe(true);
    // Wave 1 bakes for 60 s before wave 2 starts; wave 2, the last, is not baked.
    const wave1Done = at(fleet.events, (e) => e.kind === "wave-completed" && e.wave === 1) as number;
    expect(at(fleet.events, (e) => e.kind === "wave-started" && e.wave === 2)).toBe(wave1Done + MIN);
    expect(done.rollout.finishedAt).toBe(
      at(fleet.events, (e) => e.kind === "wave-completed" && e.wave === 2),
    );
  });

  it("promote auto: the canary bakes canaryBake, then the next wave starts on its own", () => {
    const record = newRollout(5, { promote: "auto" });
    const fleet = new SimFleet(record);
    const done = run(fleet, record, T0);
    expect(done.rollout.state).toBe("succeeded");
    const canaryDone = at(fleet.events, (e) => e.kind === "wave-completed" && e.wave === 0) as number;
    expect(at(fleet.events, (e) => e.kind === "wave-started" && e.wave === 1)).toBe(canaryDone + 5 * MIN);
  });

  it("a host that has the image already is never fetched; a failed fetch is retried", () => {
    const record = newRollout(4, { canary: 0, waves: ["100%"] });
    const [x, y] = record.waves[0] as [string, string];
    const fleet = new SimFleet(record, { [x]: { hasImage: true }, [y]: { fetch: "fail-once" } });
    const done = run(fleet, record, T0);
    expect(done.rollout.state).toBe("succeeded");
    expect(fleet.sent.filter((s) => s.command.kind === "fetch" && s.command.hostId === x)).toEqual([]);
    expect(
      fleet.sent.filter((s) => s.command.hostId === y && s.command.kind === "fetch").map((s) => s.command),
    ).toEqual([
      { kind: "fetch", hostId: y, attempt: 1 },
      { kind: "fetch", hostId: y, attempt: 2 },
    ]);
  });
});

describe("rollout simulation: canary failure", () => {
  it.each<[string, HostBehaviour, string[]]>([
    ["switch failed, rolled back by the agent", { switch: "fail-rolled-back" }, []],
    ["switch failed, not rolled back", { switch: "fail" }, ["canary"]],
    ["never turns healthy", { health: "unhealthy" }, ["canary"]],
  ])(
    "%s: failed via rolling-back, version bad, no switch outside the canary",
    (_name, behaviour, rollbacks) => {
      const record = newRollout(9);
      const canary = record.waves[0]?.[0] as string;
      const fleet = new SimFleet(record, { [canary]: behaviour });
      const done = run(fleet, record, T0);
      expect(done.rollout.state).toBe("failed");
      // With nothing left to roll back, rolling-back and failed can follow in one step: read the events.
      const moves = fleet.events
        .filter((e) => e.kind === "rollout-state")
        .map((e) => e.message.split(": ")[1]);
      expect(moves).toEqual(["running -> rolling-back", "rolling-back -> failed"]);
      expect(fleet.marks).toEqual(["bad"]);
      expect(fleet.sentKinds("switch")).toEqual([canary]);
      expect(fleet.sentKinds("rollback")).toEqual(rollbacks.map(() => canary));
      expect(done.rollout.hosts[canary]?.state).toBe("rolled-back");
    },
  );

  it("a canary that never turns healthy fails at its healthy deadline", () => {
    const record = newRollout(3);
    const canary = record.waves[0]?.[0] as string;
    const fleet = new SimFleet(record, { [canary]: { health: "unhealthy" } });
    run(fleet, record, T0);
    const switchedAt = fleet.sent.find((s) => s.command.kind === "switch")?.at as number;
    const failedAt = at(fleet.events, (e) => e.kind === "deadline-exceeded" && e.hostId === canary);
    expect(failedAt).toBe(switchedAt + 5 * MIN);
  });

  it("a canary turning unhealthy while awaiting promotion fails the rollout", () => {
    const record = newRollout(5);
    const canary = record.waves[0]?.[0] as string;
    const fleet = new SimFleet(record);
    const waiting = run(fleet, record, T0, { stop: (r) => r.state === "awaiting-promotion" });
    fleet.set(canary, { health: "unhealthy" }, waiting.now + 30 * SEC);
    const done = run(fleet, waiting.rollout, waiting.now + 30 * SEC);
    expect(done.rollout.state).toBe("failed");
    expect(fleet.sentKinds("switch")).toEqual([canary]);
    expect(fleet.sentKinds("rollback")).toEqual([canary]);
  });
});

describe("rollout simulation: wave failures", () => {
  it("maxFailures exceeded, onFailure rollback: every switched host rolls back, bounded, then failed and bad", () => {
    const record = newRollout(9, { rollbackMaxParallel: 2 });
    const [canary, wave1, wave2] = record.waves as [string[], string[], string[]];
    const bad = wave1[0] as string;
    const fleet = new SimFleet(record, { [bad]: { switch: "fail" } });
    let peak = 0;
    const done = throughPromotion(fleet, record, (res) => {
      peak = Math.max(peak, rollingBack(res.rollout));
    });
    expect(done.rollout.state).toBe("failed");
    expect(done.rollout.rollbackOutcome).toBe("failed");
    expect(fleet.marks).toEqual(["bad"]);
    expect(peak).toBe(2);
    expect(fleet.sentKinds("rollback").sort()).toEqual([...canary, ...wave1].sort());
    for (const id of wave2) expect(fleet.sentKinds("switch")).not.toContain(id);
    for (const id of [...canary, ...wave1]) expect(done.rollout.hosts[id]?.state).toBe("rolled-back");
  });

  it("maxFailures 1 tolerates one failed host of a wave and goes on", () => {
    const record = newRollout(9, { maxFailures: 1 });
    const bad = record.waves[2]?.[0] as string;
    const fleet = new SimFleet(record, { [bad]: { switch: "fail-rolled-back" } });
    const done = throughPromotion(fleet, record);
    expect(done.rollout.state).toBe("succeeded");
    expect(done.rollout.hosts[bad]?.state).toBe("rolled-back");
  });

  it("maxFailures 20% of a 6-host wave tolerates one failure, not two", () => {
    const record = newRollout(9, { maxFailures: "20%" });
    const wave2 = record.waves[2] as string[];
    const one = new SimFleet(record, { [wave2[0] as string]: { switch: "fail" } });
    expect(throughPromotion(one, record).rollout.state).toBe("succeeded");
    const two = new SimFleet(record, {
      [wave2[0] as string]: { switch: "fail" },
      [wave2[1] as string]: { switch: "fail" },
    });
    expect(throughPromotion(two, record).rollout.state).toBe("failed");
  });

  it("onFailure pause: paused with the reason; resume accepts the failure and goes on to the next wave", () => {
    const record = newRollout(9, { onFailure: "pause" });
    const [, wave1, wave2] = record.waves as [string[], string[], string[]];
    const bad = wave1[0] as string;
    const fleet = new SimFleet(record, { [bad]: { switch: "fail-rolled-back" } });
    const paused = throughPromotion(fleet, record);
    expect(paused.rollout).toMatchObject({ state: "paused", pauseCause: "wave-failed", currentWave: 1 });
    expect(paused.rollout.reason).toMatch(/^wave 1 failed: 1 of 2 hosts failed, 0 allowed/);
    for (const id of wave2) expect(fleet.sentKinds("switch")).not.toContain(id);
    // Nothing moves while paused.
    const sent = fleet.sent.length;
    const still = run(fleet, paused.rollout, paused.now + SEC, { maxMs: 30 * MIN, stop: () => false });
    expect(fleet.sent.length).toBe(sent);
    const resumedAt = still.now + SEC;
    const done = run(fleet, resumeRollout(still.rollout, resumedAt), resumedAt);
    expect(done.rollout.state).toBe("succeeded");
    expect(done.rollout.acceptedFailures).toEqual([bad]);
    expect(fleet.sentKinds("switch").sort()).toEqual(record.waves.flat().sort());
  });

  it("an agent offline mid-wave: the progress deadline fails the wave 10 min after the last progress", () => {
    const record = newRollout(9);
    const wave2 = record.waves[2] as string[];
    const gone = wave2[0] as string;
    const fleet = new SimFleet(record, { [gone]: { fetch: "hang" } });
    const waiting = run(fleet, record, T0, { stop: (r) => r.state === "awaiting-promotion" });
    const promoted = promoteRollout(waiting.rollout, waiting.now + SEC);
    const inWave2 = run(fleet, promoted, waiting.now + SEC, { stop: (r) => r.currentWave === 2 });
    fleet.set(gone, { online: false }, inWave2.now);
    const done = run(fleet, inWave2.rollout, inWave2.now + SEC);
    expect(done.rollout.state).toBe("failed");
    expect(done.rollout.hosts[gone]).toMatchObject({ state: "failed", reason: "progress deadline exceeded" });
    expect(fleet.sentKinds("switch")).not.toContain(gone);
    const progress = fleet.events.filter(
      (e) => e.kind === "host-state" && e.wave === 2 && /-> (staged|verifying|healthy)$/.test(e.message),
    );
    const lastProgress = Math.max(...progress.map((e) => e.at));
    expect(at(fleet.events, (e) => e.kind === "deadline-exceeded" && e.wave === 2)).toBe(
      lastProgress + 10 * MIN,
    );
  });

  it("flapping is not progress: a flapping host never turns healthy and the progress deadline ends the wave", () => {
    const record = newRollout(2, { canary: 0, waves: ["100%"], healthyDeadline: "20m" });
    const [x] = record.waves[0] as [string];
    const fleet = new SimFleet(record, { [x]: { health: "flapping" } });
    const done = run(fleet, record, T0);
    expect(done.rollout.state).toBe("failed");
    expect(done.rollout.hosts[x]?.healthyAt).toBeNull();
    expect(fleet.events.some((e) => e.hostId === x && e.message.endsWith("-> healthy"))).toBe(false);
    const verifying = at(fleet.events, (e) => e.hostId === x && e.message.endsWith("-> verifying")) as number;
    const lastProgress = Math.max(
      ...fleet.events
        .filter((e) => e.kind === "host-state" && /-> (staged|verifying|healthy)$/.test(e.message))
        .map((e) => e.at),
    );
    expect(lastProgress).toBeGreaterThanOrEqual(verifying);
    expect(at(fleet.events, (e) => e.kind === "deadline-exceeded" && e.hostId === undefined)).toBe(
      lastProgress + 10 * MIN,
    );
    expect(done.rollout.hosts[x]?.reason).toBe("progress deadline exceeded");
  });
});

describe("rollout simulation: operator verbs", () => {
  it("pause stops every clock: a deadline due during the pause does not fire, and fires shifted after resume", () => {
    const record = newRollout(3, { canary: ["h1"], waves: ["100%"] });
    const fleet = new SimFleet(record, { h1: { switch: "hang" } });
    const switching = run(fleet, record, T0, { stop: (r) => r.hosts.h1?.state === "switching" });
    const deadline = switching.rollout.hosts.h1?.deadlineAt as number;
    const pausedAt = switching.now + MIN;
    const beforePause = run(fleet, switching.rollout, switching.now + SEC, {
      stop: (_r, now) => now >= pausedAt - SEC,
    });
    const paused = pauseRollout(beforePause.rollout, pausedAt);
    // An hour of planning while paused, far past the deadline: nothing fires, nothing is sent.
    const sent = fleet.sent.length;
    const during = run(fleet, paused, pausedAt, { maxMs: 60 * MIN, stop: () => false, tick: 30 * SEC });
    expect(during.rollout.state).toBe("paused");
    expect(during.rollout.hosts.h1?.state).toBe("switching");
    expect(fleet.sent.length).toBe(sent);
    const resumedAt = pausedAt + 61 * MIN;
    const resumed = resumeRollout(during.rollout, resumedAt);
    expect(resumed.hosts.h1?.deadlineAt).toBe(deadline + 61 * MIN);
    run(fleet, resumed, resumedAt);
    expect(at(fleet.events, (e) => e.kind === "deadline-exceeded" && e.hostId === "h1")).toBe(
      deadline + 61 * MIN,
    );
  });

  it("abort: nothing is sent afterwards, hosts stay as they are", () => {
    const record = newRollout(9, { promote: "auto" });
    const fleet = new SimFleet(record, { [record.waves[1]?.[0] as string]: { switch: "hang" } });
    const mid = run(fleet, record, T0, { stop: (r) => r.currentWave === 1 && r.phase === "deploying" });
    const sent = fleet.sent.length;
    const aborted = abortRollout(mid.rollout, mid.now + SEC);
    const after = run(fleet, aborted, mid.now + SEC, { maxMs: 30 * MIN, stop: () => false });
    expect(after.rollout.state).toBe("aborted");
    expect(fleet.sent.length).toBe(sent);
    expect(fleet.marks).toEqual([]);
  });

  it.each<[string, number | undefined, number]>([
    ["the strategy's rollbackMaxParallel", undefined, 2],
    ["an override", 3, 3],
  ])(
    "rollback after success, bounded by %s: rollback commands only, no canary first, no bake",
    (_n, override, bound) => {
      const record = newRollout(6, { rollbackMaxParallel: 2 });
      const fleet = new SimFleet(record);
      const done = throughPromotion(fleet, record);
      expect(done.rollout.state).toBe("succeeded");
      const sentBefore = fleet.sent.length;
      const start = done.now + MIN;
      const rolling = rollbackRollout(
        done.rollout,
        start,
        override === undefined ? {} : { maxParallel: override },
      );
      const perStep: number[] = [];
      let peak = 0;
      const back = run(fleet, rolling, start, {
        onStep: (res) => {
          perStep.push(res.commands.length);
          peak = Math.max(peak, rollingBack(res.rollout));
        },
      });
      const after = fleet.sent.slice(sentBefore).map((s) => s.command);
      expect(back.rollout.state).toBe("rolled-back");
      expect(fleet.marks).toEqual(["stable", "bad"]);
      expect(after.every((c) => c.kind === "rollback")).toBe(true);
      expect(after.map((c) => c.hostId).sort()).toEqual(record.waves.flat().sort());
      // No canary first: the first step sends a full batch; never more than the bound at once.
      expect(perStep[0]).toBe(bound);
      expect(peak).toBe(bound);
      // No bake: done as soon as the batches are back, one simulated second each.
      expect(back.now - start).toBeLessThanOrEqual(Math.ceil(6 / bound) * SEC);
    },
  );

  it("rolling back has a clock: a rollback that never completes fails that host after twice healthyDeadline", () => {
    const record = newRollout(4, { canary: 0, waves: ["100%"] });
    const stuck = record.waves[0]?.[0] as string;
    const fleet = new SimFleet(record, { [stuck]: { rollback: "hang" } });
    const done = run(fleet, record, T0);
    expect(done.rollout.state).toBe("succeeded");
    const start = done.now + SEC;
    const back = run(fleet, rollbackRollout(done.rollout, start), start);
    expect(back.rollout.state).toBe("rolled-back");
    expect(back.rollout.hosts[stuck]).toMatchObject({
      state: "rollback-failed",
      reason: "rollback did not complete within 10m",
    });
    const issued = fleet.sent.find((s) => s.command.kind === "rollback" && s.command.hostId === stuck)
      ?.at as number;
    expect(back.rollout.finishedAt).toBe(issued + 10 * MIN);
  });
});
