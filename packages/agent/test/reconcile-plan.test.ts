import { type ObservedApp, planReconcile, type ReconcileStep, type SwitchIntent } from "@gild/agent";
import { emptyDeployResult } from "@gild/protocol";
import { describe, expect, it } from "vitest";

const intent = (over: Partial<SwitchIntent> = {}): SwitchIntent => ({
  commandId: "ro_1:h1:switch:web",
  kind: "deployApp",
  app: "web",
  from: 4,
  to: 5,
  isNew: true,
  healthyDeadlineMs: 60_000,
  startedAt: 1_000,
  outcome: null,
  ...over,
});

const observed = (over: Partial<ObservedApp>): ObservedApp => ({
  app: "web",
  current: 4,
  generations: [3, 4],
  running: [],
  intent: null,
  ...over,
});

/** Steps without their intent bodies: what a table row reads best as. */
function brief(steps: ReconcileStep[]): string[] {
  return steps.map((s) => {
    switch (s.kind) {
      case "stop":
      case "start":
      case "watch":
        return `${s.kind} ${s.generation}`;
      case "resume-switch":
        return `resume ${s.intent.from}->${s.intent.to}${s.startTarget ? " (start)" : ""}`;
      case "report":
        return `report ${s.intent.commandId}`;
      case "abandon-switch":
        return `abandon ${s.intent.to}`;
      default:
        return s satisfies never;
    }
  });
}

/**
 * What the pool and the containers look like once the steps ran and every switch settled the way
 * `targetHealthy` says: the next start's observation.
 */
function afterSteps(o: ObservedApp, steps: ReconcileStep[], targetHealthy: boolean): ObservedApp {
  let running = new Set(o.running);
  let current = o.current;
  let generations = [...o.generations];
  for (const step of steps) {
    if (step.kind === "stop") running.delete(step.generation);
    if (step.kind === "start") running.add(step.generation);
    if (step.kind === "resume-switch" || step.kind === "abandon-switch") {
      const { from, to, isNew } = step.intent;
      if (step.kind === "resume-switch" && targetHealthy) {
        running = new Set([to]);
        current = to;
      } else {
        running = new Set(from === null ? [] : [from]);
        if (isNew) generations = generations.filter((g) => g !== to);
      }
    }
  }
  return { ...o, running: [...running], current, generations, intent: null };
}

describe("planReconcile: an agent's start, from what it finds to one running generation", () => {
  const rows: Array<{ name: string; observed: ObservedApp; steps: string[] }> = [
    {
      name: "nothing runs: start the current generation and watch it",
      observed: observed({}),
      steps: ["start 4", "watch 4"],
    },
    {
      name: "the current generation survived the agent: adopt and watch, no restart",
      observed: observed({ running: [4] }),
      steps: ["watch 4"],
    },
    {
      name: "a leftover of an earlier generation runs beside the current one: stopped",
      observed: observed({ running: [3, 4] }),
      steps: ["stop 3", "watch 4"],
    },
    {
      name: "no current generation (never switched): everything that runs is stopped",
      observed: observed({ current: null, generations: [1], running: [1] }),
      steps: ["stop 1"],
    },
    {
      name: "current points at a generation without a meta: nothing to start",
      observed: observed({ current: 9 }),
      steps: [],
    },
    {
      name: "killed mid-switch, old stopped, new running: the switch goes on with the new one's health gate",
      observed: observed({ generations: [3, 4, 5], running: [5], intent: intent() }),
      steps: ["resume 4->5"],
    },
    {
      name: "killed mid-switch, both running (the old one's stop was cut): stop the old, go on",
      observed: observed({ generations: [3, 4, 5], running: [4, 5], intent: intent() }),
      steps: ["stop 4", "resume 4->5"],
    },
    {
      name: "killed mid-switch, nothing runs (new one not started yet): start it within the switch",
      observed: observed({ generations: [3, 4, 5], running: [], intent: intent() }),
      steps: ["resume 4->5 (start)"],
    },
    {
      name: "killed mid-switch with a stray third generation running: it is stopped too",
      observed: observed({ generations: [3, 4, 5], running: [3, 5], intent: intent() }),
      steps: ["stop 3", "resume 4->5"],
    },
    {
      name: "a first deploy interrupted: the switch goes on (no old generation to go back to)",
      observed: observed({
        current: null,
        generations: [1],
        running: [],
        intent: intent({ from: null, to: 1 }),
      }),
      steps: ["resume null->1 (start)"],
    },
    {
      name: "the switch's target snapshot is gone: abandoned, the old generation runs",
      observed: observed({ generations: [3, 4], running: [], intent: intent() }),
      steps: ["start 4", "watch 4", "abandon 5"],
    },
    {
      name: "the switch ended (outcome recorded) but its result was not journaled: report it",
      observed: observed({
        current: 5,
        generations: [4, 5],
        running: [5],
        intent: intent({ outcome: { ok: true, result: { ...emptyDeployResult("web"), generation: 5 } } }),
      }),
      steps: ["watch 5", "report ro_1:h1:switch:web"],
    },
    {
      name: "a rollback command interrupted: same rules, from the current to the previous generation",
      observed: observed({
        current: 5,
        generations: [4, 5],
        running: [],
        intent: intent({ kind: "rollbackApp", from: 5, to: 4, isNew: false }),
      }),
      steps: ["resume 5->4 (start)"],
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      expect(brief(planReconcile(row.observed))).toEqual(row.steps);
    });
  }

  it("converges: after the steps ran (target healthy or not), planning again asks only to watch one generation", () => {
    for (const row of rows) {
      for (const targetHealthy of [true, false]) {
        const next = afterSteps(row.observed, planReconcile(row.observed), targetHealthy);
        const again = planReconcile(next);
        const running = afterSteps(next, again, targetHealthy).running;
        expect(
          again.every((s) => s.kind === "watch" || s.kind === "start"),
          row.name,
        ).toBe(true);
        expect(running.length, row.name).toBeLessThanOrEqual(1);
        expect(
          brief(planReconcile({ ...next, running })).filter((s) => !s.startsWith("watch")),
          row.name,
        ).toEqual([]);
      }
    }
  });

  it("is pure: the observation is not changed", () => {
    const o = observed({ generations: [3, 4, 5], running: [3, 4, 5], intent: intent() });
    const copy = structuredClone(o);
    planReconcile(o);
    expect(o).toEqual(copy);
  });
});
