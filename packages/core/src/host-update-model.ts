/**
 * The host-update model shared by the pure planner (host-update-planner.ts) and the controller's executor.
 * docs/architecture.md, Host updates. A job runs one command on hosts, canary first and in waves; all
 * times are absolute milliseconds since the epoch, so a restarted controller resumes exactly.
 */
import type { MaintenanceWindow } from "./maintenance-window.js";
import type { CountOrPercent, WaveJobEvent } from "./rollout-model.js";

/**
 * running: waves go on. paused: no host starts (the operator's pause, or a failure with onFailure pause).
 * failed, aborted: no host starts ever again; hosts already started still finish their steps.
 * succeeded: every host done.
 */
export type HostUpdateState = "running" | "paused" | "succeeded" | "failed" | "aborted";

export const HOST_UPDATE_STATES: readonly HostUpdateState[] = [
  "running",
  "paused",
  "succeeded",
  "failed",
  "aborted",
];

/** Per host: pending -> running-command -> rebooting (when called for) -> verifying -> done, or failed. */
export type HostUpdateHostState =
  | "pending"
  | "running-command"
  | "rebooting"
  | "verifying"
  | "done"
  | "failed";

/** A host in one of these states has started and not finished: it counts against maxUnavailable. */
export const IN_FLIGHT_HOST_STATES: readonly HostUpdateHostState[] = [
  "running-command",
  "rebooting",
  "verifying",
];

/** When a host is rebooted after its command succeeded. */
export type RebootPolicy = "never" | "if-required" | "always";

/** A host-update strategy with every default applied (defaults in brackets). */
export interface HostUpdateStrategy {
  /** Number of canary hosts [1]; 0 for none. Ignored when canaryHosts is set. */
  canary: number;
  /** Host ids or names named as canaries, or null to choose `canary` hosts by hash of host id. */
  canaryHosts: string[] | null;
  /** Batch sizes after the canary; the last one repeats [25%, 100%]. */
  waves: CountOrPercent[];
  /** Hosts of a wave in flight at once; a percent is of all the job's hosts [1]. */
  maxUnavailable: CountOrPercent;
  /** [if-required]: when the command's host reports a reboot required (Debian's /run/reboot-required). */
  reboot: RebootPolicy;
  /** The agent kills the command after this long, and the host fails [30 min]. */
  commandTimeoutMs: number;
  /**
   * From the end of the command (or from the reboot), the host has this long to be online with every
   * app on it healthy for minHealthy; also how long a host whose turn came may stay offline [10 min].
   */
  deadlineMs: number;
  /** Every app on the host held healthy this long without a break [10 s]. */
  minHealthyMs: number;
  /** Wait after each wave but the last [60 s]. */
  bakeMs: number;
  /** A failed host pauses the job for the operator, or fails it [pause]. Either way no new host starts. */
  onFailure: "pause" | "fail";
}

/** One host's progress in a host update. */
export interface HostUpdateStep {
  hostId: string;
  /** Index into HostUpdateRecord.waves. */
  wave: number;
  state: HostUpdateHostState;
  /**
   * The host's clock: the command's deadline (running-command), the deadline to be back and healthy
   * (rebooting, verifying), or, for a pending host whose turn came while it was offline, the deadline
   * to come online. null otherwise.
   */
  deadlineAt: number | null;
  /** Why the host failed, or why a pending host waits (its maintenance window). */
  reason: string | null;
  /** When the command was issued. */
  startedAt: number | null;
  /** When the reboot was issued; app health streaks must begin after it. null when not rebooted. */
  rebootedAt: number | null;
  /** The command's exit code, once known. */
  exitCode: number | null;
  doneAt: number | null;
}

/** Why a job is paused: the operator's verb, or a failed host (onFailure pause). */
export type HostUpdatePauseCause = "operator" | "host-failed";

export interface HostUpdateRecord {
  id: string;
  /** What runs on each host, as an argv (a shell text is ["/bin/sh", "-c", text]). */
  argv: string[];
  strategy: HostUpdateStrategy;
  state: HostUpdateState;
  /** Host ids per wave; waves[0] is the canary wave when hasCanary. */
  waves: string[][];
  hasCanary: boolean;
  /** Index of the active wave. */
  currentWave: number;
  /** Within a running job: is the current wave updating hosts, or baking after it completed. */
  phase: "updating" | "baking";
  /** Absolute end of the current bake; null when not baking. Resume shifts it by the pause. */
  bakeUntil: number | null;
  /** When the job was paused; null when not paused. */
  pausedAt: number | null;
  pauseCause: HostUpdatePauseCause | null;
  /** Failed hosts the operator accepted by resuming: they no longer stop the waves. */
  acceptedFailures: string[];
  /** Why the job paused, failed or was aborted. */
  reason: string | null;
  hosts: Record<string, HostUpdateStep>;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

/** A command's observed state; for the host command, its result once it ended. */
export interface HostCommandObservation {
  state: "pending" | "running" | "succeeded" | "failed";
  /** The exit code, when the command ran to an exit (a non-zero exit is a failed command). */
  exitCode: number | null;
  /** The host says a reboot is required (after the command). */
  rebootRequired: boolean;
  /** For a failed command: the error, with the output's last lines. */
  reason: string | null;
}

/** An app on the host, whatever its line. */
export interface HostAppObservation {
  name: string;
  health: "healthy" | "unhealthy" | "unknown";
  /** Start of the current healthy streak on the controller's clock, null when not healthy. */
  healthySince: number | null;
}

/** What the executor observed of one host, for one job. */
export interface HostUpdateObservation {
  online: boolean;
  /** The job's run command on this host, or null if none was issued. */
  command: HostCommandObservation | null;
  /** The job's reboot command on this host, or null if none was issued. */
  reboot: HostCommandObservation | null;
  /** Every app on the host. */
  apps: HostAppObservation[];
  /** The host's effective maintenance windows; absent or empty: always open. Commands start only inside. */
  windows?: readonly MaintenanceWindow[];
}

export interface HostUpdateFleetObservation {
  hosts: Record<string, HostUpdateObservation>;
}

/** Commands the executor sends; one sender per kind. */
export type HostUpdateCommand = { kind: "run"; hostId: string } | { kind: "reboot"; hostId: string };

export type HostUpdateEventKind =
  | "job-state"
  | "wave-started"
  | "wave-completed"
  | "wave-failed"
  | "bake-started"
  | "host-state"
  | "deadline-exceeded"
  | "failure-cluster";

export type HostUpdateEvent = WaveJobEvent<HostUpdateEventKind>;

export interface HostUpdatePlanResult {
  /** The job after this step; the executor stores it before any command goes out. */
  job: HostUpdateRecord;
  /** What the new record calls for that the old one did not (hostUpdateCommandsCalledFor, the one rule). */
  commands: HostUpdateCommand[];
  events: HostUpdateEvent[];
  /** Earliest absolute time at which planning again could change something, or null. */
  nextWakeAt: number | null;
}
