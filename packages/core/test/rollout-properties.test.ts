// Whole runs over many seeded random fleets and strategies: whatever the hosts do, a rollout ends, never
// switches a host twice, never switches outside a failed canary, and respects its parallelism bounds.
import type { RawStrategy, RolloutRecord } from "@gild/core";
import { describe, expect, it } from "vitest";
import { type HostBehaviour, MIN, newRollout, run, SEC, SimFleet, T0 } from "./rollout-fixtures.js";
import { pick, rng } from "./seeded-random.js";

function scenario(seed: number): {
  strategy: RawStrategy;
  hosts: number;
  behaviours: Record<string, HostBehaviour>;
} {
  const next = rng(seed);
  const hosts = 1 + Math.floor(next() * 9);
  const strategy: RawStrategy = {
    canary: pick(next, [0, 1, 2]),
    waves: pick(next, [["25%", "100%"], [1, 2], ["50%"], ["100%"]] as RawStrategy["waves"][]),
    maxParallel: pick(next, [null, 1, 2]),
    maxFailures: pick(next, [0, 1, "50%"]),
    prefetch: next() < 0.7,
    promote: "auto",
    bake: pick(next, ["0s", "30s"]),
    canaryBake: pick(next, ["0s", "1m"]),
    rollbackMaxParallel: pick(next, [null, 1, 3]),
  };
  const behaviours: Record<string, HostBehaviour> = {};
  for (let i = 1; i <= hosts; i++) {
    behaviours[`h${i}`] = {
      fetch: pick(next, ["ok", "fail-once", "fail", "hang"] as const, [8, 2, 1, 0.5]),
      switch: pick(next, ["ok", "fail-rolled-back", "fail", "hang"] as const, [8, 1, 1, 0.5]),
      health: pick(next, ["healthy", "unhealthy", "flapping"] as const, [8, 1, 1]),
      rollback: pick(next, ["ok", "fail", "hang"] as const, [8, 1, 1]),
      rollbackReady: next() < 0.97,
      online: next() < 0.95,
    };
  }
  return { strategy, hosts, behaviours };
}

const SEEDS = Array.from({ length: 60 }, (_, i) => i + 1);

describe("rollout properties over random fleets", () => {
  it.each(SEEDS)("seed %i", (seed) => {
    const { strategy, hosts, behaviours } = scenario(seed);
    const record = newRollout(hosts, strategy);
    const fleet = new SimFleet(record, behaviours);
    let canaryFailed = false;
    let lastRunning: RolloutRecord = record;
    const done = run(fleet, record, T0, {
      maxMs: 8 * 60 * MIN,
      tick: 5 * SEC,
      onStep: (res) => {
        const r = res.rollout;
        if (r.state === "running") {
          lastRunning = r;
          const wave = (r.waves[r.currentWave] ?? []).map((id) => r.hosts[id]);
          const busy = wave.filter((h) =>
            ["switching", "verifying", "rolling-back"].includes(h?.state ?? ""),
          );
          if (r.strategy.maxParallel !== null)
            expect(busy.length).toBeLessThanOrEqual(r.strategy.maxParallel);
        }
        if (r.state === "rolling-back" && r.rollbackParallel !== null) {
          const rolling = Object.values(r.hosts).filter((h) => h.state === "rolling-back").length;
          // Hosts a running wave already rolled back may exceed the bound; then no new rollback is sent.
          const sent = res.commands.filter((c) => c.kind === "rollback").length;
          if (sent > 0) expect(rolling).toBeLessThanOrEqual(r.rollbackParallel);
        }
        if (r.hasCanary && res.events.some((e) => e.kind === "wave-failed" && e.wave === 0))
          canaryFailed = true;
        if (res.commands.some((c) => c.kind === "switch")) expect(canaryFailed).toBe(false);
      },
    });
    // A rollout never hangs: paused (readiness) is the only stop that waits for a person.
    expect(["succeeded", "failed", "paused"]).toContain(done.rollout.state);
    if (done.rollout.state === "paused") expect(done.rollout.pauseCause).toBe("rollback-not-ready");
    if (done.rollout.state === "succeeded") {
      expect(fleet.marks).toEqual(["stable"]);
      // Every host is healthy, or failed within its wave's budget (then it was never left on the target).
      for (const h of Object.values(done.rollout.hosts))
        expect(["healthy", "failed", "rolled-back"]).toContain(h.state);
    }
    if (done.rollout.state === "failed") {
      expect(fleet.marks).toEqual(["bad"]);
      // Nothing is left on the target: every switched host was rolled back or its rollback failed.
      for (const h of Object.values(done.rollout.hosts)) {
        expect(["switching", "verifying", "healthy", "rolling-back"]).not.toContain(h.state);
      }
    }
    if (canaryFailed) {
      const canaries = record.waves[0] ?? [];
      for (const id of fleet.sentKinds("switch")) expect(canaries).toContain(id);
    }
    expect(lastRunning).toBeDefined();
  });
});
