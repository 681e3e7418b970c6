import { GildError } from "./errors.js";
import type { HostUpdateRecord, HostUpdateState } from "./host-update-model.js";
import { isStoppedHostUpdate, unacceptedFailures } from "./host-update-rules.js";

// Operator verbs. Each returns a new record (the input is never mutated) or throws
// GILD_HOST_UPDATE_STATE; the executor stores the record and plans again.

/** Start no more hosts; hosts already started finish their steps. The bake's clock stops. */
export function pauseHostUpdate(job: HostUpdateRecord, now: number): HostUpdateRecord {
  requireState(job, "pause", ["running"], "only a running host update can be paused");
  const j = structuredClone(job);
  j.state = "paused";
  j.pausedAt = now;
  j.pauseCause = "operator";
  j.reason = "paused by the operator";
  j.updatedAt = now;
  return j;
}

/**
 * Go on where the job paused, the bake shifted by the pause. Failed hosts are accepted: the operator
 * looked at them, and they no longer stop the waves.
 */
export function resumeHostUpdate(job: HostUpdateRecord, now: number): HostUpdateRecord {
  requireState(job, "resume", ["paused"], "only a paused host update can be resumed");
  const j = structuredClone(job);
  if (j.bakeUntil !== null) j.bakeUntil += Math.max(0, now - (j.pausedAt ?? now));
  j.acceptedFailures = [...j.acceptedFailures, ...unacceptedFailures(j).map((h) => h.hostId)];
  j.state = "running";
  j.pausedAt = null;
  j.pauseCause = null;
  j.reason = null;
  j.updatedAt = now;
  return j;
}

/** Stop for good: no host starts again; hosts already started finish (a reboot they need included). */
export function abortHostUpdate(job: HostUpdateRecord, now: number): HostUpdateRecord {
  if (isStoppedHostUpdate(job)) throw stateError(job, "abort", "the host update has already ended");
  const j = structuredClone(job);
  j.state = "aborted";
  j.bakeUntil = null;
  j.pausedAt = null;
  j.pauseCause = null;
  j.reason = "aborted by the operator";
  j.updatedAt = now;
  return j;
}

function requireState(job: HostUpdateRecord, verb: string, allowed: HostUpdateState[], hint: string): void {
  if (!allowed.includes(job.state)) throw stateError(job, verb, hint);
}

function stateError(job: HostUpdateRecord, verb: string, hint: string): GildError {
  return new GildError("GILD_HOST_UPDATE_STATE", `cannot ${verb} host update ${job.id}: it is ${job.state}`, {
    hint,
    details: { hostUpdateId: job.id, state: job.state },
  });
}

/** The operator verbs, the one table the API routes and the CLI read. */
export const HOST_UPDATE_VERBS = {
  pause: {
    description: "start no more hosts (hosts already started finish their steps)",
    apply: pauseHostUpdate,
  },
  resume: {
    description: "go on; failed hosts are accepted and no longer stop the waves",
    apply: resumeHostUpdate,
  },
  abort: {
    description: "stop for good: no host starts again (hosts already started finish, a reboot included)",
    apply: abortHostUpdate,
  },
} as const satisfies Record<
  string,
  { description: string; apply: (job: HostUpdateRecord, now: number) => HostUpdateRecord }
>;

export type HostUpdateVerb = keyof typeof HOST_UPDATE_VERBS;

export const HOST_UPDATE_VERB_NAMES = Object.keys(HOST_UPDATE_VERBS) as HostUpdateVerb[];
