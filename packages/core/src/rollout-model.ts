import type { MaintenanceWindow } from "./maintenance-window.js";

/**
 * The rollout model shared by the pure planner (rollout-planner.ts) and the controller's executor.
 * docs/architecture.md, Rollouts. All times are absolute milliseconds since the epoch, so a restarted controller
 * resumes exactly from what it stored.
 */

export type RolloutState =
  | "running"
  | "paused"
  | "awaiting-promotion"
  | "succeeded"
  | "failed"
  | "aborted"
  | "rolling-back"
  | "rolled-back";

export const TERMINAL_ROLLOUT_STATES: readonly RolloutState[] = [
  "succeeded",
  "failed",
  "aborted",
  "rolled-back",
];

/** The rollout sends no more commands (aborted included). */
export function isTerminalRolloutState(state: string): boolean {
  return (TERMINAL_ROLLOUT_STATES as readonly string[]).includes(state);
}

/**
 * The rollout is over for good: nothing is planned or recorded any more. An aborted rollout is not:
 * the results of commands already running are still recorded, and it can be rolled back.
 */
export function isSettledRolloutState(state: string): boolean {
  return isTerminalRolloutState(state) && state !== "aborted";
}

/**
 * Per host: pending -> fetching -> staged -> switching -> verifying -> healthy, or -> failed ->
 * rolled-back. `rolling-back` is the transition of a host that a rollback is taking back.
 * `rollback-failed`: the host went back (or was to), but the generation it went back to did not pass
 * its own health gate, or the rollback did not finish in time: it may not serve, and counts as failed.
 */
export type HostState =
  | "pending"
  | "fetching"
  | "staged"
  | "switching"
  | "verifying"
  | "healthy"
  | "failed"
  | "rolling-back"
  | "rolled-back"
  | "rollback-failed";

/** A wave's size, or a failure budget: a host count or a percentage. */
export type CountOrPercent = { count: number } | { percent: number };

/** A rollout's strategy with every default applied (defaults in brackets). */
export interface RolloutStrategy {
  /** Number of canary hosts [1]; 0 for none. Ignored when canaryHosts is set. */
  canary: number;
  /** Host ids named as canaries, or null to choose `canary` hosts by hash of host id. */
  canaryHosts: string[] | null;
  /** Batch sizes after the canary; the last one repeats [25%, 100%]. */
  waves: CountOrPercent[];
  /** Hosts switching at once inside a wave; null for the whole wave [null]. */
  maxParallel: number | null;
  /** Fetch the next wave's image while the current wave verifies or bakes [true]. */
  prefetch: boolean;
  /** A host counts as healthy only after every app on it held healthy this long without a break [10 s]. */
  minHealthyMs: number;
  /** From its switch, a host has this long to become healthy [5 min]. */
  healthyDeadlineMs: number;
  /** A wave that makes no progress for this long fails; reset by progress, stopped while paused [10 min]. */
  progressDeadlineMs: number;
  /** Wait after each wave before the next one [60 s]. */
  bakeMs: number;
  /** Wait after the canary wave [5 min]. */
  canaryBakeMs: number;
  /** Failed hosts a wave tolerates [0]. The canary tolerates none, whatever this says. */
  maxFailures: CountOrPercent;
  /** After the canary: wait for `gild rollout promote` (manual), or go on after canaryBake (auto) [manual]. */
  promote: "manual" | "auto";
  /** When a wave fails: roll back every host this rollout switched, or pause for the operator [rollback]. */
  onFailure: "rollback" | "pause";
  /** Hosts rolling back at once; null for half the hosts to roll back, at least one [null]. */
  rollbackMaxParallel: number | null;
}

/** One host's progress in a rollout. */
export interface HostStep {
  hostId: string;
  /** Index into RolloutRecord.waves. */
  wave: number;
  state: HostState;
  /** Fetch commands issued so far: a failed fetch is retried until 3 attempts in all, then the host fails. */
  fetchAttempts: number;
  /**
   * The host's clock: the healthy deadline, set when the switch is issued (switching, verifying), or the
   * rollback deadline (now + 2 x healthyDeadlineMs, rollbackDeadlineMs), set when a rollback command is
   * issued (rolling-back).
   */
  deadlineAt: number | null;
  /** Why the host failed or was rolled back, or why a staged host waits (its maintenance window). */
  reason: string | null;
  /** The version of the line the host ran before this rollout switched it (for display). */
  fromVersion: number | null;
  switchedAt: number | null;
  healthyAt: number | null;
  /**
   * The host runs (or may run) the target version and is to be rolled back, but its rollback command has
   * not been issued yet (held back by rollback parallelism, or because the rollout was paused).
   */
  rollbackPending: boolean;
  /**
   * Peers that served this host a chunk that did not match the signed manifest while it fetched the
   * image (peer fan-out), each once; absent when none did. Replaced whole, never changed in place
   * (copyRecord copies host steps shallowly).
   */
  badPeers?: readonly BadPeerReport[];
}

/** A peer a host reported for serving it a bad chunk, and the host's reason. */
export interface BadPeerReport {
  hostId: string;
  reason: string;
}

/** Why a rollout is paused: the operator's verb, a wave failure (onFailure pause), or readiness. */
export type PauseCause = "operator" | "wave-failed" | "rollback-not-ready";

export type RolloutKind = "rollout";

export interface RolloutRecord {
  id: string;
  line: string;
  /** Target version. */
  version: number;
  strategy: RolloutStrategy;
  state: RolloutState;
  /** Host ids per wave; waves[0] is the canary wave when hasCanary. */
  waves: string[][];
  hasCanary: boolean;
  /** Index of the active wave. */
  currentWave: number;
  /** Within a running rollout: is the current wave switching hosts, or baking after it completed. */
  phase: "deploying" | "baking";
  /**
   * Absolute; null when no wave is deploying (or once it fired). Kept while paused: resume shifts it,
   * with every other clock, by the length of the pause.
   */
  progressDeadlineAt: number | null;
  /** Absolute end of the current bake; null when not baking. */
  bakeUntil: number | null;
  /**
   * When the current wave started (the first wave: null, it starts with the rollout). Records stored
   * before this field existed have none.
   */
  waveStartedAt?: number | null;
  /** When the rollout was paused; null when not paused. Resume shifts every clock by now - pausedAt. */
  pausedAt: number | null;
  /** State to return to on resume (running or awaiting-promotion). */
  resumeState: RolloutState | null;
  /** Why the rollout is paused; null when not paused. */
  pauseCause: PauseCause | null;
  /**
   * Failed hosts the operator accepted by resuming after a wave failure: they no longer count against
   * their wave's maxFailures.
   */
  acceptedFailures: string[];
  /**
   * Hosts rolling back at once in the rolling-back state, fixed when it began (the rollback verb's
   * override, strategy.rollbackMaxParallel, or half the hosts to roll back, at least one); null before.
   */
  rollbackParallel: number | null;
  /** Why the rollout paused, failed, or rolls back. */
  reason: string | null;
  /** Final state once a rollback completes: failed (automatic, after a failure) or rolled-back (operator). */
  rollbackOutcome: "failed" | "rolled-back" | null;
  hosts: Record<string, HostStep>;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

/** What the executor observed of one host, for one rollout. */
export interface HostObservation {
  online: boolean;
  /** The target version of the line is on the host's pool. */
  hasImage: boolean;
  /** Every app of the line on the host has a running generation to return to (not on the target). */
  rollbackReady: boolean;
  /** The newest fetch / switch / rollback command of this rollout on this host, or null if none. */
  fetch: FetchObservation | null;
  switch: CommandObservation | null;
  rollback: CommandObservation | null;
  /** Apps of the rollout's line on this host. */
  apps: AppObservation[];
  /** The host's effective maintenance windows; absent or empty: always open. Switches start only inside. */
  windows?: readonly MaintenanceWindow[];
}

export interface CommandObservation {
  state: "pending" | "running" | "succeeded" | "failed";
  /** For a failed switch: the agent already rolled the host back to its previous generation. */
  rolledBack: boolean;
  /**
   * With rolledBack (or for a failed rollback): the generation gone back to did not pass its own
   * health gate; `reason` then carries that probe's result and log tail too.
   */
  rollbackUnhealthy?: boolean;
  reason: string | null;
}

export interface AppObservation {
  name: string;
  /** Image version of the running generation. */
  version: number;
  health: "healthy" | "unhealthy" | "unknown";
  /** Start of the current healthy streak, null when not healthy. */
  healthySince: number | null;
}

/** A fetch result also names the attempt it answers, so a stale result of an older attempt is ignored. */
export interface FetchObservation extends CommandObservation {
  /** RolloutCommand.attempt of the fetch this result belongs to. */
  attempt: number;
  /** Peers the host reported for serving it a bad chunk in this fetch (PullResult.bad_peers). */
  badPeers?: readonly BadPeerReport[];
}

export interface FleetObservation {
  hosts: Record<string, HostObservation>;
}

/** Commands the executor sends; one executor per kind. `attempt` makes the command id unique. */
export type RolloutCommand =
  | { kind: "fetch"; hostId: string; attempt: number }
  | { kind: "switch"; hostId: string }
  | { kind: "rollback"; hostId: string };

/** What a rollout event is about. */
export type RolloutEventKind =
  | "rollout-state"
  | "wave-started"
  | "wave-completed"
  | "wave-failed"
  | "bake-started"
  | "host-state"
  | "deadline-exceeded"
  /** A host's fetch met a peer that served a chunk not matching the signed manifest. */
  | "bad-peer"
  /** What the failed hosts share that the healthy ones do not (failure-clusters.ts), when it changed. */
  | "failure-cluster";

/** An event of a wave job (a rollout, a host update): its kind, the host and wave it concerns, a message. */
export interface WaveJobEvent<K extends string> {
  at: number;
  kind: K;
  hostId?: string;
  /** The wave the event concerns, when it concerns one. */
  wave?: number;
  message: string;
}

export type RolloutEvent = WaveJobEvent<RolloutEventKind>;

export interface PlanResult {
  /** The rollout after this step; the executor stores it before any command goes out. */
  rollout: RolloutRecord;
  /**
   * The commands this step calls for that the record before it did not: commandsCalledFor (the one rule)
   * of the new record, less those of the old. The executor sends everything the stored record calls
   * for (commands already sent have the same ids and are not sent again), which is these plus any a
   * crash kept from going out.
   */
  commands: RolloutCommand[];
  events: RolloutEvent[];
  /** A status for the target version that follows from this step. */
  markVersion: "stable" | "bad" | null;
  /** Earliest absolute time at which planning again could change something (a clock), or null. */
  nextWakeAt: number | null;
}
