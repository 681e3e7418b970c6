// What the controller's API answers, as types: the controller builds its answers with these (so a
// route that changes its answer no longer compiles), and every client reads them.
import type {
  AppSpec,
  FailureCluster,
  HostStep,
  HostUpdatePauseCause,
  HostUpdateRecord,
  HostUpdateState,
  HostUpdateStep,
  HostUpdateStrategy,
  ImageOrigin,
  ImageStatus,
  LineKind,
  PauseCause,
  RawHostUpdateStrategy,
  RawStrategy,
  RolloutRecord,
  RolloutState,
  RolloutStrategy,
  SerializedError,
  Timeline,
} from "@gild/core";
import type { AppInstance, TransferProgress } from "@gild/protocol";

/** A transfer's progress on one host, as views carry it. */
export type ProgressUpdate = TransferProgress;

/** A host as the API shows it: identity, liveness, versions, images and free space. */
export interface HostView {
  id: string;
  name: string;
  labels: Record<string, string>;
  /** online, offline or joined (never connected yet). */
  state: string;
  /** A live session that said Hello and answers pings. */
  connected: boolean;
  lastSeen: number | null;
  joinedAt: number;
  agentVersion: string | null;
  protocolVersion: number | null;
  kernelVersion: string | null;
  btrfsProgsVersion: string | null;
  facts: Record<string, string>;
  images: Array<{ line: string; version: number; receivedUuid: string }>;
  poolFreeBytes: number | null;
  poolTotalBytes: number | null;
  /** The apps as the host's last inventory reported them (health streaks on the controller's clock). */
  apps: Array<Omit<AppInstance, "healthyForMs">>;
  /** The host's effective maintenance window, and whether it is open now. */
  window: HostWindowView;
}

/**
 * A host's effective maintenance window: its own rule if it has one, else every label rule matching
 * it (joined). No rule: always open.
 */
export interface HostWindowView {
  /** The windows in force, comma-separated; null when no rule applies (always open). */
  spec: string | null;
  /** The rules they come from: the host's name, or the label selectors that match it. */
  rules: string[];
  open: boolean;
  /** When it next opens (now when open), ms since the epoch; null when no rule applies. */
  nextOpenAt: number | null;
  /** When the open stretch ends; null when closed or always open. */
  openUntil: number | null;
}

/** One maintenance window rule, as `gild host window ls` lists it. */
export interface WindowRuleView {
  /** A host name, or a label selector `key=value`. */
  target: string;
  kind: "host" | "label";
  spec: string;
  /** The hosts it applies to now (a host with a rule of its own ignores label rules). */
  hosts: string[];
  setBy: string | null;
  setAt: number;
}

export interface WindowRulesView {
  rules: WindowRuleView[];
}

/** One app on one host, as its inventory reports it. */
export interface AppInstanceView {
  host: string;
  hostState: string;
  generation: number;
  imageVersion: number;
  state: string;
  health: string;
  healthDetail: string;
  healthSince: number | null;
  previousGeneration: number;
  previousImageVersion: number;
  /** The version of the app's code line the generation mounts (0: none), and the previous generation's. */
  codeVersion: number;
  previousCodeVersion: number;
  /** The host runs the app's current spec (false: it was deployed with an older definition). */
  specCurrent: boolean;
}

export interface AppView {
  spec: AppSpec;
  specHash: string;
  createdBy: string | null;
  createdAt: number;
  /** Hosts the app's selectors match now. */
  targets: string[];
  instances: AppInstanceView[];
  /**
   * The versions the app was last deployed or rolled out at (null: never): what a host added to the
   * app gets, and what a deploy that moves only the other line keeps.
   */
  versions: { image: number | null; code: number | null };
}

/** A host's progress through a manual deploy or rollback, streamed to the CLI. */
export interface DeployEvent {
  host: string;
  /**
   * rolled-back: the switch failed and the previous generation serves again (healthy);
   * rollback-failed: the switch failed and the previous generation did not pass its health gate either;
   * removed: the app was taken off the host (`gild app hosts rm`).
   */
  state: "pulling" | "switching" | "done" | "rolled-back" | "rollback-failed" | "failed" | "removed";
  generation?: number;
  previousGeneration?: number;
  progress?: ProgressUpdate;
  reason?: string;
  error?: SerializedError;
}

/** A chunk of an app's log on one host. */
export interface LogChunkView {
  generation: number;
  data: string;
  nextOffset: number;
  size: number;
}

/** A version of a line on the controller, with where it is present in the fleet. */
export interface ImageView {
  line: string;
  version: number;
  /** os: an image apps run on; code: an app's files, mounted read-only (gild code ...). */
  kind: LineKind;
  uuid: string;
  status: ImageStatus;
  parent: number | null;
  sizeBytes: number | null;
  origin: ImageOrigin | null;
  createdBy: string | null;
  createdAt: number;
  /** Hosts that have it (asked for with hosts=1). */
  hosts?: string[];
}

/** One host's view of a push, streamed to the CLI as it changes. */
export interface PushEvent {
  host: string;
  state: "queued" | "preparing" | "transferring" | "present" | "done" | "failed";
  progress?: ProgressUpdate;
  /** Bytes of the artifact sent to this host, and whether it was incremental. */
  artifact?: { id: string; sizeBytes: number; parentVersion: number; streamVersion: number };
  error?: SerializedError;
  resumedFrom?: number;
  /** Bytes the host actually downloaded (less than the artifact after a resume). */
  bytesTransferred?: number;
  /** Of those, bytes that came from other hosts (peer fan-out) rather than the controller. */
  bytesFromPeers?: number;
  /** Peers that served this host a chunk that did not match the signed manifest (never used again). */
  badPeers?: Array<{ host: string; reason: string }>;
}

/** What an image source request names: a directory on the controller, or a debootstrap. */
export type ImageSourceRequest =
  | { kind: "dir"; path: string }
  | { kind: "debootstrap"; suite: string; include?: string[]; mirror?: string; cacheDir?: string };

/** One host in a rollout, as views show it. */
export interface RolloutHostView extends HostStep {
  name: string;
  online: boolean;
  progress: ProgressUpdate | null;
  /** Peers that served this host a bad chunk in its fetch (never used again), by name; absent: none. */
  badPeers?: Array<{ hostId: string; host: string; reason: string }>;
}

/** A rollout as the API, `gild rollout status` and the live view show it. */
export interface RolloutView {
  id: string;
  line: string;
  version: number;
  image: string;
  versionStatus: ImageStatus | null;
  state: RolloutState;
  phase: RolloutRecord["phase"];
  currentWave: number;
  reason: string | null;
  /** The error code that goes with the state and reason (GILD_ROLLOUT_FAILED, ...), or null. */
  reasonCode: string | null;
  pauseCause: PauseCause | null;
  createdBy: string | null;
  apps: string[] | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  clocks: { progressDeadlineAt: number | null; bakeUntil: number | null; pausedAt: number | null };
  strategy: RolloutStrategy;
  waves: Array<{ index: number; canary: boolean; hosts: RolloutHostView[] }>;
  /** What two or more failed hosts share that the healthy ones do not (empty otherwise). */
  failureClusters: FailureCluster[];
}

/** A dry run of a rollout: its waves and estimated timeline. */
export interface RolloutPlanView {
  image: string;
  strategy: RolloutStrategy;
  waves: Array<{ index: number; canary: boolean; hosts: string[] }>;
  timeline: Timeline;
}

/** What `POST /v1/rollouts` (and /plan) takes. */
export interface RolloutRequestBody {
  image: string;
  /** Strategy fields as a file or flags give them (`bake: "5m"`); the controller resolves them. */
  strategy?: RawStrategy;
  /** Host names or label selectors to limit the rollout to. */
  hosts?: string[];
  /** App names to limit the rollout to. */
  apps?: string[];
}

export interface TokenView {
  id: string;
  createdAt: number;
  expiresAt: number;
  createdBy: string | null;
  usedAt: number | null;
  usedBy: string | null;
}

/** A copy of the controller's SQLite store (POST /v1/backups), on the controller's server. */
export interface BackupView {
  path: string;
  bytes: number;
  createdAt: number;
}

export interface CreatedToken {
  token: string;
  id: string;
  expiresAt: number;
  controllerUrl: string;
}

/** What a join token is traded for at enrollment: the host's identity and what it must trust. */
export interface JoinAnswer {
  hostId: string;
  name: string;
  credential: string;
  caPem: string;
  signingPublicKeyPem: string;
}

/**
 * A signed-in dashboard session (POST /v1/session): who, with what role, until when, and the CSRF
 * token every mutation made with the session cookie must carry in `x-gild-csrf` (null when the
 * caller authenticated with a bearer token, which needs none).
 */
export interface SessionView {
  user: string;
  role: "viewer" | "operator" | "admin";
  expiresAt: number | null;
  csrfToken: string | null;
}

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  method: string;
  path: string;
  status: number;
  summary: string | null;
}

/** What `POST /v1/host-updates` (and /plan) takes. */
export interface HostUpdateRequestBody {
  /** The command as one shell text (run by /bin/sh -c); or give `argv`. */
  command?: string;
  /** The command as a program and its arguments; or give `command`. */
  argv?: string[];
  /** Host names and `key=value` label selectors: required, a host update never means every host. */
  hosts: string[];
  /** Strategy fields as flags give them (`deadline: "10m"`); the controller resolves them. */
  strategy?: RawHostUpdateStrategy;
}

/** One host in a host update, as views show it. */
export interface HostUpdateHostView extends HostUpdateStep {
  name: string;
  online: boolean;
  /** The last lines of the command's output, once it ended (empty before). */
  outputTail: string;
}

/** A named operator (never its token: that is shown once, when made or rotated). */
export interface UserView {
  name: string;
  role: "viewer" | "operator" | "admin";
  createdAt: number;
  createdBy: string | null;
  tokenCreatedAt: number;
  /** When the token stops working; null for never. */
  expiresAt: number | null;
}

/** A host update as the API and `gild host-update status` show it. */
export interface HostUpdateView {
  id: string;
  argv: string[];
  state: HostUpdateState;
  phase: HostUpdateRecord["phase"];
  currentWave: number;
  reason: string | null;
  /** GILD_HOST_UPDATE_FAILED for a failed job, else null. */
  reasonCode: string | null;
  pauseCause: HostUpdatePauseCause | null;
  /** No host starts again, and none is in flight: the job is over for good. */
  settled: boolean;
  createdBy: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  clocks: { bakeUntil: number | null; pausedAt: number | null };
  strategy: HostUpdateStrategy;
  waves: Array<{ index: number; canary: boolean; hosts: HostUpdateHostView[] }>;
  /** What two or more failed hosts share that the updated ones do not (empty otherwise). */
  failureClusters: FailureCluster[];
}

/** A dry run of a host update: its waves, and what a failure means. */
export interface HostUpdatePlanView {
  argv: string[];
  strategy: HostUpdateStrategy;
  /**
   * windowOpensAt: hosts of the wave outside their maintenance window now, and when it opens (ms since
   * the epoch); they start only then.
   */
  waves: Array<{ index: number; canary: boolean; hosts: string[]; windowOpensAt: Record<string, number> }>;
  /** What the plan cannot promise, said plainly (no automatic un-upgrade). */
  notes: string[];
}
