import type { Logger } from "@gild/core";

/** A directory of the host made visible inside the container. */
export interface BindMount {
  source: string;
  target: string;
  readOnly?: boolean;
}

/** Everything needed to run one generation of an app in a container. */
export interface ContainerSpec {
  /** App name: lowercase letters, digits and '-', starting with a letter. */
  app: string;
  /** Positive integer; one container per (app, generation). */
  generation: number;
  /** Absolute path of the container's root (a writable snapshot of an image version). */
  rootfs: string;
  /** The container's PID 1 and its arguments; it must handle SIGTERM itself. */
  command: string[];
  env: Record<string, string>;
  binds: BindMount[];
  /** Absolute path; the container's stdout and stderr are appended here. */
  logFile: string;
  /** How long stop() waits after SIGTERM before it kills. */
  stopTimeoutMs: number;
  /** Absolute path of a network namespace (/run/netns/x) to run in; default the starter's own. */
  netnsPath?: string;
}

/** What is known about one container. */
export interface ContainerStatus {
  app: string;
  generation: number;
  running: boolean;
  /** The supervisor's pid (systemd-nspawn), or null when not running. */
  pid: number | null;
  /** Epoch milliseconds, or null when unknown. */
  startedAt: number | null;
  /** The container's exit code once it ended, when known (null for an adopted container). */
  exitCode: number | null;
  /** The signal that ended the container's supervisor, when one did. */
  signal: string | null;
}

export interface StopResult {
  /** The container ended on SIGTERM within the stop timeout (false: it was killed). */
  graceful: boolean;
  exitCode: number | null;
}

export interface ExecResult {
  /** Exit code of the command, or null when it timed out or was killed. */
  exitCode: number | null;
  /** stdout and stderr interleaved, trimmed to a bounded size. */
  output: string;
}

export type DriverKind = "process" | "systemd";

/** One way of running app containers on this host. */
export interface RuntimeDriver {
  readonly kind: DriverKind;
  /** Start the container; resolves once its init runs (not once it is healthy). */
  start(spec: ContainerSpec): Promise<ContainerStatus>;
  /** SIGTERM, then SIGKILL after the stop timeout; idempotent; nothing of the container is left running. */
  stop(app: string, generation: number, opts?: { timeoutMs?: number }): Promise<StopResult>;
  status(app: string, generation: number): Promise<ContainerStatus>;
  /** Every container this driver knows of (started, adopted, or left by a previous agent). */
  list(): Promise<ContainerStatus[]>;
  /** After an agent restart: re-attach to the containers that survived it. */
  adopt(): Promise<ContainerStatus[]>;
  /** Run a command inside the running container (for exec health probes). */
  exec(app: string, generation: number, argv: string[], opts: { timeoutMs: number }): Promise<ExecResult>;
  /** Called when a container ends without stop() being asked; returns the unsubscribe function. */
  onExit(listener: (status: ContainerStatus) => void): () => void;
  /** Stop the driver's timers and listeners; running containers are left alone. */
  close(): void;
}

export interface RuntimeDriverOptions {
  /** Directory for the driver's own state (pid files); created with mode 0700. */
  runDir: string;
  log?: Logger;
  /** How long start() waits for nspawn to bring up the container's init; default 15 s. */
  startTimeoutMs?: number;
  /** How often containers this process did not start are checked for exit; default 1 s. */
  watchIntervalMs?: number;
}
