import type { SwitchIntent } from "./switch-intent.js";

/** What an agent finds of one app when it starts: the pool and the containers still running. */
export interface ObservedApp {
  app: string;
  /** The generation `current` points at, or null. */
  current: number | null;
  /** Generations with a snapshot and a meta (only those can be started). */
  generations: readonly number[];
  /** Generations whose container runs (re-adopted from an earlier agent). */
  running: readonly number[];
  /** A switch an earlier agent began and did not settle. */
  intent: SwitchIntent | null;
}

/**
 * One step towards the app's desired state: exactly one generation running, and it healthy. A
 * tagged union; the app manager has one executor per kind, checked by the type system.
 */
export type ReconcileStep =
  /** A container that must not run: a leftover of an interrupted switch, or a generation gone. */
  | { kind: "stop"; generation: number; why: string }
  /** The current generation is not running: start it. */
  | { kind: "start"; generation: number }
  /** The current generation runs: watch its health (restart it if it ends). */
  | { kind: "watch"; generation: number }
  /**
   * An interrupted switch: bring `intent.to` up (start it unless it runs), pass its health gate,
   * else go back to `intent.from` with its own gate; the command's result is recorded either way.
   */
  | { kind: "resume-switch"; intent: SwitchIntent; startTarget: boolean }
  /** The switch had ended (its outcome recorded) when the agent stopped: journal that outcome. */
  | { kind: "report"; intent: SwitchIntent }
  /** The switch's target is gone (its snapshot was removed): it failed; go back to `from`. */
  | { kind: "abandon-switch"; intent: SwitchIntent; reason: string };

/** Stops for every running container but `keep`, highest generation first. */
function stopAllBut(observed: ObservedApp, keep: readonly number[], why: string): ReconcileStep[] {
  return [...observed.running]
    .filter((g) => !keep.includes(g))
    .sort((a, b) => b - a)
    .map((generation) => ({ kind: "stop", generation, why }));
}

/** Run `generation` if it can run: watch it when it already does, else start and watch it. */
function runOne(observed: ObservedApp, generation: number | null): ReconcileStep[] {
  if (generation === null || !observed.generations.includes(generation)) return [];
  return observed.running.includes(generation)
    ? [{ kind: "watch", generation }]
    : [
        { kind: "start", generation },
        { kind: "watch", generation },
      ];
}

/**
 * The steps that take one app from what an agent found at start to exactly one running generation,
 * the new one if an interrupted switch's target turns healthy, else the old one. Pure: (observed) ->
 * steps, in order; the app manager executes them and observes again on the next start.
 */
export function planReconcile(observed: ObservedApp): ReconcileStep[] {
  const intent = observed.intent;
  if (intent === null) {
    return [
      ...stopAllBut(
        observed,
        observed.current === null ? [] : [observed.current],
        "not the current generation",
      ),
      ...runOne(observed, observed.current),
    ];
  }
  if (intent.outcome !== null) {
    // The switch ended and `current` already says where: only its answer was not journaled yet.
    return [
      ...stopAllBut(
        observed,
        observed.current === null ? [] : [observed.current],
        "not the current generation",
      ),
      ...runOne(observed, observed.current),
      { kind: "report", intent },
    ];
  }
  if (!observed.generations.includes(intent.to)) {
    const back = intent.from;
    return [
      ...stopAllBut(observed, back === null ? [] : [back], "its switch was abandoned"),
      ...runOne(observed, back),
      { kind: "abandon-switch", intent, reason: `generation ${intent.to} is gone from the pool` },
    ];
  }
  // The switch stops `from` before it starts `to`: whatever else runs is stopped, `from` included.
  return [
    ...stopAllBut(observed, [intent.to], "an interrupted switch goes on"),
    { kind: "resume-switch", intent, startTarget: !observed.running.includes(intent.to) },
  ];
}
