import type { HostUpdateRecord, HostUpdateStep } from "./host-update-model.js";
import { IN_FLIGHT_HOST_STATES } from "./host-update-model.js";

/** The job starts no host ever again: it succeeded, failed or was aborted. */
export function isStoppedHostUpdate(job: HostUpdateRecord): boolean {
  return job.state === "succeeded" || job.state === "failed" || job.state === "aborted";
}

/** Some host of the job has started and not finished (running its command, rebooting, verifying). */
export function hasHostInFlight(job: HostUpdateRecord): boolean {
  return Object.values(job.hosts).some((h) => IN_FLIGHT_HOST_STATES.includes(h.state));
}

/**
 * The job is over for good: stopped, and no host of it still in flight (a host started before a
 * failure or an abort finishes its steps, and is still recorded).
 */
export function isSettledHostUpdate(job: HostUpdateRecord): boolean {
  return isStoppedHostUpdate(job) && !hasHostInFlight(job);
}

/** Failed hosts the operator has not accepted by resuming: each one stops the waves. */
export function unacceptedFailures(job: HostUpdateRecord): HostUpdateStep[] {
  return job.waves
    .flat()
    .map((id) => job.hosts[id] as HostUpdateStep)
    .filter((h) => h.state === "failed" && !job.acceptedFailures.includes(h.hostId));
}
