import { GildError } from "./errors.js";
import type { RolloutRecord, RolloutState } from "./rollout-model.js";
import { TERMINAL_ROLLOUT_STATES } from "./rollout-model.js";
import { enterRollingBack, hostsToRollBack, markPaused, stopClocks, waveFailures } from "./rollout-rules.js";

// Operator verbs. Each returns a new record (the input is never mutated) or throws GILD_ROLLOUT_STATE;
// the executor stores the record and plans again, and planRollout sends whatever the new state calls for.

/** Pause a running rollout (or one awaiting promotion): no commands, every clock stops. */
export function pauseRollout(rollout: RolloutRecord, now: number): RolloutRecord {
  requireState(rollout, "pause", ["running", "awaiting-promotion"], "only a running rollout can be paused");
  const r = structuredClone(rollout);
  markPaused(r, "operator", "paused by the operator", now);
  r.state = "paused";
  r.updatedAt = now;
  return r;
}

/**
 * Resume a paused rollout where it was, every clock shifted by the pause. After a wave failure
 * (onFailure pause), the failed hosts of that wave are accepted and the wave gets a fresh progress deadline.
 */
export function resumeRollout(rollout: RolloutRecord, now: number): RolloutRecord {
  requireState(rollout, "resume", ["paused"], "only a paused rollout can be resumed");
  const r = structuredClone(rollout);
  shiftClocks(r, now);
  if (r.pauseCause === "wave-failed") {
    const accepted = waveFailures(r, r.currentWave).map((h) => h.hostId);
    r.acceptedFailures = [...r.acceptedFailures, ...accepted];
    if (r.phase === "deploying") r.progressDeadlineAt = now + r.strategy.progressDeadlineMs;
  }
  r.state = r.resumeState ?? "running";
  r.resumeState = null;
  r.pausedAt = null;
  r.pauseCause = null;
  r.reason = null;
  r.updatedAt = now;
  return r;
}

/** Go on after the canary (awaiting-promotion), or end the current bake early: the next wave starts. */
export function promoteRollout(rollout: RolloutRecord, now: number): RolloutRecord {
  const baking = rollout.state === "running" && rollout.phase === "baking";
  if (rollout.state !== "awaiting-promotion" && !baking) {
    throw stateError(
      rollout,
      "promote",
      "promote goes on after the canary, or ends a bake; there is neither now",
    );
  }
  if (rollout.currentWave + 1 >= rollout.waves.length) {
    throw stateError(rollout, "promote", "there is no wave left to promote to");
  }
  const r = structuredClone(rollout);
  r.state = "running";
  r.currentWave += 1;
  r.phase = "deploying";
  r.bakeUntil = null;
  r.progressDeadlineAt = now + r.strategy.progressDeadlineMs;
  r.reason = null;
  r.updatedAt = now;
  return r;
}

/** Stop a rollout for good: nothing more is sent, hosts stay as they are (rollback can follow). */
export function abortRollout(rollout: RolloutRecord, now: number): RolloutRecord {
  if (TERMINAL_ROLLOUT_STATES.includes(rollout.state)) {
    throw stateError(rollout, "abort", "the rollout has already ended");
  }
  const r = structuredClone(rollout);
  r.state = "aborted";
  r.finishedAt = now;
  r.reason = "aborted by the operator";
  stopClocks(r);
  r.updatedAt = now;
  return r;
}

/**
 * Take every host this rollout moved to the target back to its previous generation: rollback commands
 * only (no fetch, no canary, no bake), `maxParallel` (else the strategy's, else half) at a time.
 */
export function rollbackRollout(
  rollout: RolloutRecord,
  now: number,
  options: { maxParallel?: number | null } = {},
): RolloutRecord {
  requireState(
    rollout,
    "rollback",
    ["succeeded", "failed", "aborted", "paused"],
    "pause or abort the rollout first; a rollout that is rolling back already needs nothing",
  );
  const override = options.maxParallel;
  if (override !== undefined && override !== null && !(Number.isInteger(override) && override >= 1)) {
    throw new GildError("GILD_INVALID_SPEC", "invalid rollback parallelism: must be a whole number >= 1", {
      hint: "give --max-parallel a host count like 5, or leave it out",
      details: { problems: [{ path: "rollbackMaxParallel", message: "must be a whole number >= 1" }] },
    });
  }
  const inFlight = Object.values(rollout.hosts).some((h) => h.state === "rolling-back");
  if (hostsToRollBack(rollout).length === 0 && !inFlight) {
    throw stateError(
      rollout,
      "rollback",
      `no host of this rollout runs ${rollout.line}@${rollout.version}; there is nothing to roll back`,
    );
  }
  const r = structuredClone(rollout);
  if (r.state === "paused") shiftClocks(r, now);
  enterRollingBack(r, "rolled-back", "rollback by the operator", override);
  r.updatedAt = now;
  return r;
}

/** Shift every clock of a paused rollout by the length of the pause, so a pause stops them all. */
function shiftClocks(r: RolloutRecord, now: number): void {
  const delta = Math.max(0, now - (r.pausedAt ?? now));
  if (r.progressDeadlineAt !== null) r.progressDeadlineAt += delta;
  if (r.bakeUntil !== null) r.bakeUntil += delta;
  for (const host of Object.values(r.hosts)) {
    if (host.deadlineAt !== null) host.deadlineAt += delta;
  }
}

function requireState(rollout: RolloutRecord, verb: string, allowed: RolloutState[], hint: string): void {
  if (!allowed.includes(rollout.state)) throw stateError(rollout, verb, hint);
}

function stateError(rollout: RolloutRecord, verb: string, hint: string): GildError {
  return new GildError("GILD_ROLLOUT_STATE", `cannot ${verb} rollout ${rollout.id}: it is ${rollout.state}`, {
    hint,
    details: { rolloutId: rollout.id, state: rollout.state },
  });
}

/** What an operator verb takes besides the rollout and the time. */
export interface VerbOptions {
  /** rollback: hosts rolling back at once (default: the strategy's, else half). */
  maxParallel?: number;
}

/**
 * The operator verbs, the one table the executor, the API routes and the CLI read: what each does (for
 * the CLI's help), and the pure function that applies it.
 */
export const ROLLOUT_VERBS = {
  pause: {
    description: "stop sending commands and stop every clock",
    apply: (r: RolloutRecord, now: number, _options: VerbOptions) => pauseRollout(r, now),
  },
  resume: {
    description: "continue a paused rollout (clocks shift by the pause)",
    apply: (r: RolloutRecord, now: number, _options: VerbOptions) => resumeRollout(r, now),
  },
  promote: {
    description: "continue after the canary (or end a bake early)",
    apply: (r: RolloutRecord, now: number, _options: VerbOptions) => promoteRollout(r, now),
  },
  abort: {
    description: "stop for good; hosts stay where they are (then `rollback` if needed)",
    apply: (r: RolloutRecord, now: number, _options: VerbOptions) => abortRollout(r, now),
  },
  rollback: {
    description: "take every switched host back to its previous generation: no download, no canary, no bake",
    apply: (r: RolloutRecord, now: number, options: VerbOptions) =>
      rollbackRollout(r, now, options.maxParallel === undefined ? {} : { maxParallel: options.maxParallel }),
  },
} as const satisfies Record<
  string,
  { description: string; apply: (r: RolloutRecord, now: number, options: VerbOptions) => RolloutRecord }
>;

export type RolloutVerb = keyof typeof ROLLOUT_VERBS;

/** The verbs' names, in the table's order. */
export const ROLLOUT_VERB_NAMES = Object.keys(ROLLOUT_VERBS) as RolloutVerb[];
