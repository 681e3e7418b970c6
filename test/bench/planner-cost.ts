import {
  createRollout,
  type FleetObservation,
  type HostObservation,
  planRollout,
  type RawStrategy,
  type RolloutRecord,
  resolveStrategy,
} from "@gild/core";
import { median } from "./stats.js";

/** What one planning step over a whole fleet costs in the pure planner, and the record's size. */
export interface PlannerCost {
  hosts: number;
  waves: number[];
  /** The stored record (JSON) in bytes: written on every change, parsed on every read. */
  recordBytes: number;
  createMs: number;
  /** A step that changes nothing (a host of the wave still verifying): most steps during a wave. */
  idleStepMs: number;
  /** The step that completes the second-to-last wave and switches the whole last one. */
  transitionStepMs: number;
  transitionCommands: number;
  transitionEvents: number;
  stringifyMs: number;
  parseMs: number;
}

function timeMs(fn: () => void, runs = 5): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

/**
 * Build a rollout of `hosts` hosts with the bench's strategy, put it where the last transition happens
 * (every host of the second-to-last wave healthy but one, which turns healthy now; the last wave
 * prefetched), and time planRollout there, plus JSON of the record. Pure CPU, in this process.
 */
export function measurePlannerCost(hosts: number, raw: RawStrategy): PlannerCost {
  const strategy = resolveStrategy(raw);
  const targets = Array.from({ length: hosts }, (_, i) => ({
    hostId: `h_${i.toString(16).padStart(16, "0")}`,
    hostName: `bench-${i}`,
    apps: [{ name: "svc", version: 1 }],
  }));
  const t0 = performance.now();
  const created = createRollout(
    { id: "ro_bench", line: "bench", version: 2, strategy, targets, activeRolloutIds: [] },
    Date.now(),
  );
  const createMs = performance.now() - t0;
  const now = Date.now();
  const last = created.waves.length - 1;
  const current = Math.max(0, last - 1);
  const record: RolloutRecord = structuredClone(created);
  record.currentWave = current;
  record.phase = "deploying";
  const observation: FleetObservation = { hosts: {} };
  const done = (since: number): HostObservation => ({
    online: true,
    hasImage: true,
    rollbackReady: false,
    fetch: { state: "succeeded", rolledBack: false, reason: null, attempt: 1 },
    switch: { state: "succeeded", rolledBack: false, reason: null },
    rollback: null,
    apps: [{ name: "svc", version: 2, health: "healthy", healthySince: since }],
  });
  let straggler = "";
  record.waves.forEach((ids, wave) => {
    for (const id of ids) {
      const step = record.hosts[id];
      if (!step) continue;
      if (wave < current || (wave === current && id !== ids.at(-1))) {
        Object.assign(step, {
          state: "healthy",
          fetchAttempts: 1,
          switchedAt: now - 5_000,
          healthyAt: now - 1_000,
        });
        observation.hosts[id] = done(now - 2_000);
      } else if (wave === current) {
        straggler = id;
        Object.assign(step, {
          state: "verifying",
          fetchAttempts: 1,
          switchedAt: now - 1_000,
          deadlineAt: now + 600_000,
        });
        observation.hosts[id] = done(now);
      } else {
        Object.assign(step, { state: "staged", fetchAttempts: 1 });
        observation.hosts[id] = {
          online: true,
          hasImage: true,
          rollbackReady: true,
          fetch: { state: "succeeded", rolledBack: false, reason: null, attempt: 1 },
          switch: null,
          rollback: null,
          apps: [{ name: "svc", version: 1, health: "healthy", healthySince: now - 86_400_000 }],
        };
      }
    }
  });
  const transition = planRollout(record, observation, now);
  const transitionStepMs = timeMs(() => planRollout(record, observation, now));
  // The same moment with the straggler not healthy yet: a step that changes nothing.
  const idleObservation: FleetObservation = {
    hosts: {
      ...observation.hosts,
      [straggler]: {
        ...done(now),
        apps: [{ name: "svc", version: 2, health: "unknown", healthySince: null }],
      },
    },
  };
  const idleStepMs = timeMs(() => planRollout(record, idleObservation, now));
  let text = "";
  const stringifyMs = timeMs(() => {
    text = JSON.stringify(transition.rollout);
  });
  const parseMs = timeMs(() => JSON.parse(text));
  return {
    hosts,
    waves: created.waves.map((w) => w.length),
    recordBytes: Buffer.byteLength(text),
    createMs,
    idleStepMs,
    transitionStepMs,
    transitionCommands: transition.commands.length,
    transitionEvents: transition.events.length,
    stringifyMs,
    parseMs,
  };
}
