import type { ChildProcess, StdioOptions } from "node:child_process";
import type { NetnsEnter } from "./fleet-state.js";

export interface FleetOptions {
  /** Number of agents to start. */
  hosts: number;
  /** Where everything lives (default: a fresh mkdtemp under os.tmpdir(), "gild-fleet-"). */
  dir?: string;
  /** Short id (4-6 hex) used in netns and interface names; default random. */
  id?: string;
  /** Per-host btrfs pool on a sparse loopback file (default 2048). */
  poolSizeMiB?: number;
  /** Default 4096. */
  controllerPoolSizeMiB?: number;
  /** Mount pools with compress=zstd (default true). */
  compress?: boolean;
  /** Extra `gild controller run` flags (after the harness's own, so they win). */
  controllerArgs?: string[];
  /** Extra `gild agent run` flags. */
  agentArgs?: string[];
  /**
   * Extra `gild agent run` flags for one host (by index, from 1, with its address on the fleet
   * bridge: `--peer-listen <address>:7744`), after agentArgs.
   */
  hostAgentArgs?: (index: number, address: string) => string[];
  /** Environment for one host's agent (by index, from 1): a faked clock, say. */
  hostAgentEnv?: (index: number) => Record<string, string>;
  /**
   * The `gild` CLI (path of its bin.js) one host joins and runs its agent with (by index, from 1);
   * undefined for the fleet's own: an agent of another release in a mixed fleet.
   */
  hostCli?: (index: number) => string | undefined;
  /**
   * Put the controller's data dir (database, keys, artifacts) on a filesystem of its own of this many
   * MiB (a loopback btrfs), so a test can fill it up. Default: on the fleet dir's filesystem.
   */
  controllerDataMiB?: number;
  hostLabels?: (index: number) => Record<string, string>;
  /** Default host-1, host-2, ... */
  hostName?: (index: number) => string;
  /** Progress lines (the quickstart prints them); default silent. */
  log?: (line: string) => void;
  /**
   * Keep the fleet when this process exits (the quickstart starts one and exits). Without it, an exit
   * or SIGINT/SIGTERM tears the fleet down. Either way an interruption during createFleet undoes it.
   */
  persist?: boolean;
  /**
   * How programs enter a host's namespace (default "nsenter": network namespace only). "ip-netns-exec"
   * also gives them a private mount namespace with a fresh /sys, which hides /sys/fs/cgroup here.
   */
  enter?: NetnsEnter;
  /** Deadline for the controller to answer /healthz and for hosts to come online (default 60 s). */
  startTimeoutMs?: number;
}

/** What a program run by the fleet printed, and its exit code (128 + signal when killed). */
export interface ProgramResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Added to the environment (GILD_* variables of this process are never passed on). */
  env?: Record<string, string>;
  input?: string;
  cwd?: string;
  /** Default 60 s; the program is killed and the call rejects at the deadline. */
  timeoutMs?: number;
}

export interface SpawnInNetnsOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Default ["ignore", "pipe", "pipe"]. */
  stdio?: StdioOptions;
}

/** A host as `gild hosts --json` shows it (the fields the harness reads; the rest passes through). */
export interface FleetHostStatus {
  name: string;
  state: string;
  lastSeen: number | null;
  [field: string]: unknown;
}

export interface FleetHost {
  index: number;
  name: string;
  netns: string;
  /** e.g. 10.213.7.11 */
  address: string;
  poolPath: string;
  stateDir: string;
  logFile: string;
  labels: Record<string, string>;
  /** The agent process, if running. */
  pid(): number | undefined;
  /** Start (again) `gild agent run` inside the netns; resolves when the controller shows it online. */
  startAgent(): Promise<void>;
  /** Default SIGTERM; waits until the process is gone. */
  stopAgent(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL, waits until gone (for crash tests). */
  killAgent(): Promise<void>;
  /** Take the host's link down (a netsplit: the namespace keeps running, nothing gets in or out) or up. */
  setLink(up: boolean): Promise<void>;
  /** Run a program inside the host's netns and wait for it. */
  exec(argv: string[], opts?: ExecOptions): Promise<ProgramResult>;
  /** Start a program inside the host's netns without waiting (a server for a test); destroy() kills leftovers. */
  spawn(argv: string[], opts?: SpawnInNetnsOptions): ChildProcess;
  /** http://<address>:<port><path> */
  url(port: number, path?: string): string;
}

export interface GildOptions {
  env?: Record<string, string>;
  input?: string;
  /** Default 60 s; the CLI is killed and the call rejects at the deadline. */
  timeoutMs?: number;
}

export interface Fleet {
  dir: string;
  id: string;
  controllerUrl: string;
  controllerDataDir: string;
  controllerPool: string;
  /** The controller's address on the fleet bridge (x.y.z.1). */
  bridgeAddress: string;
  controllerLogFile: string;
  /** Env for the CLI against this controller (GILD_CONTROLLER_DIR=...). */
  env: Record<string, string>;
  hosts: FleetHost[];
  /** Run the CLI against this controller; a non-zero exit is returned, not thrown. */
  gild(args: string[], opts?: GildOptions): Promise<ProgramResult>;
  /** Adds --json, throws with stderr on a non-zero exit, parses stdout. */
  gildJson<T>(args: string[]): Promise<T>;
  controllerPid(): number | undefined;
  /** Waits until /healthz answers. */
  startController(): Promise<void>;
  /** Default SIGTERM; waits until the process is gone. */
  stopController(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL (for crash-resume tests). */
  killController(): Promise<void>;
  /** Join and start one more agent. */
  addHost(): Promise<FleetHost>;
  /** Default: every host of the fleet, 60 s. */
  waitHostsOnline(names?: string[], timeoutMs?: number): Promise<void>;
  /** `gild hosts --json`. */
  hostStatuses(): Promise<FleetHostStatus[]>;
  /** Idempotent. */
  destroy(): Promise<void>;
}
