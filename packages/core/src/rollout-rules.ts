import type { ErrorCode } from "./errors.js";
import type { HostState, HostStep, PauseCause, RolloutRecord } from "./rollout-model.js";

/** Fetch attempts a host gets in all before it fails. */
export const MAX_FETCH_ATTEMPTS = 3;

/**
 * How long a host's rollback may take: twice healthyDeadline. The rollback may first wait for the
 * host's own local rollback to end (it holds the old generation to its health gate, up to
 * healthyDeadline), then holds the generation it settles on to that gate itself.
 */
export function rollbackDeadlineMs(rollout: RolloutRecord): number {
  return 2 * rollout.strategy.healthyDeadlineMs;
}

/** States of a host that failed in this rollout (whether or not it is back on its previous version). */
const FAILURE_STATES: readonly HostState[] = ["failed", "rolling-back", "rolled-back", "rollback-failed"];

/** States of a switched host that runs, or may run, the target version. */
const ON_TARGET_STATES: readonly HostState[] = ["switching", "verifying", "healthy"];

/** The hosts of one wave of a wave job (a rollout, a host update), in wave order. */
export function hostsOfWave<S>(job: { waves: string[][]; hosts: Record<string, S> }, wave: number): S[] {
  return (job.waves[wave] ?? []).map((id) => job.hosts[id] as S);
}

/** Is this wave of a wave job the canary wave? */
export function isCanaryWave(job: { hasCanary: boolean }, wave: number): boolean {
  return job.hasCanary && wave === 0;
}

/** Failed hosts a wave tolerates: none for the canary; a count, or a percent of the wave rounded down. */
export function failureBudget(rollout: RolloutRecord, wave: number): number {
  if (isCanaryWave(rollout, wave)) return 0;
  const max = rollout.strategy.maxFailures;
  if ("count" in max) return max.count;
  const size = rollout.waves[wave]?.length ?? 0;
  // The epsilon keeps 10% of 30 at 3 despite float error.
  return Math.floor((max.percent * size) / 100 + 1e-9);
}

/** Hosts of a wave that failed and count against its budget (accepted failures do not). */
export function waveFailures(rollout: RolloutRecord, wave: number): HostStep[] {
  return hostsOfWave(rollout, wave).filter(
    (h) => FAILURE_STATES.includes(h.state) && !rollout.acceptedFailures.includes(h.hostId),
  );
}

/** A host is done for its wave: healthy, or failed and not waiting for a rollback to finish. */
export function isHostDone(host: HostStep): boolean {
  return (
    host.state === "healthy" ||
    host.state === "rolled-back" ||
    host.state === "rollback-failed" ||
    (host.state === "failed" && !host.rollbackPending)
  );
}

/** Has the host been switched and may run the target version (so a rollback would change it)? */
export function isOnTarget(host: HostStep): boolean {
  return host.switchedAt !== null && ON_TARGET_STATES.includes(host.state);
}

/** Hosts a rollback takes back: every switched host on the target, and failed ones still waiting for one. */
export function hostsToRollBack(rollout: RolloutRecord): HostStep[] {
  return rollout.waves
    .flat()
    .map((id) => rollout.hosts[id] as HostStep)
    .filter((h) => isOnTarget(h) || (h.state === "failed" && h.rollbackPending));
}

/** Rollback parallelism: the override, else the strategy's, else half the hosts (rounded up, at least one). */
export function rollbackParallelism(rollout: RolloutRecord, hosts: number, override?: number | null): number {
  return override ?? rollout.strategy.rollbackMaxParallel ?? Math.max(1, Math.ceil(hosts / 2));
}

/**
 * Put a rollout into rolling-back: every switched host still on the target (and failed ones waiting)
 * is queued for a rollback, with parallelism fixed now. Clocks of the forward rollout stop.
 * Returns the number of hosts to roll back.
 */
export function enterRollingBack(
  rollout: RolloutRecord,
  outcome: "failed" | "rolled-back",
  reason: string,
  parallelOverride?: number | null,
): number {
  const queued = hostsToRollBack(rollout);
  for (const host of queued) host.rollbackPending = true;
  const total = queued.length + Object.values(rollout.hosts).filter((h) => h.state === "rolling-back").length;
  rollout.rollbackParallel = rollbackParallelism(rollout, total, parallelOverride);
  rollout.state = "rolling-back";
  rollout.rollbackOutcome = outcome;
  rollout.reason = reason;
  stopClocks(rollout);
  rollout.finishedAt = null;
  return total;
}

/** No wave deploys, no bake runs, nothing waits paused: every rollout-level clock is cleared. */
export function stopClocks(rollout: RolloutRecord): void {
  rollout.progressDeadlineAt = null;
  rollout.bakeUntil = null;
  rollout.pausedAt = null;
  rollout.resumeState = null;
  rollout.pauseCause = null;
}

/** What pausing records (the state itself is set by the caller): why, since when, and where to resume. */
export function markPaused(rollout: RolloutRecord, cause: PauseCause, reason: string, now: number): void {
  rollout.resumeState = rollout.state;
  rollout.pausedAt = now;
  rollout.pauseCause = cause;
  rollout.reason = reason;
}

/**
 * The error code that goes with a rollout's state and reason, for views and the CLI: a failed or
 * rolled-back rollout is GILD_ROLLOUT_FAILED, one paused because a host has nothing to roll back to is
 * GILD_ROLLBACK_NOT_READY; null otherwise.
 */
export function rolloutReasonCode(rollout: RolloutRecord): ErrorCode | null {
  if (rollout.state === "failed" || rollout.state === "rolled-back") return "GILD_ROLLOUT_FAILED";
  if (rollout.state === "paused" && rollout.pauseCause === "rollback-not-ready")
    return "GILD_ROLLBACK_NOT_READY";
  return null;
}
