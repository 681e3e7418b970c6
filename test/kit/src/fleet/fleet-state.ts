import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ProcessRecord } from "./process-record.js";

/** The state file's name inside the fleet dir. */
export const FLEET_STATE_FILE = "fleet.json";

/** How programs are started inside a host's network namespace. */
export type NetnsEnter = "nsenter" | "ip-netns-exec";

/** A btrfs pool on a loopback file; recorded before the file is made, so a partial one is undone too. */
export interface PoolRecord {
  backingFile: string;
  mountPoint: string;
  sizeMiB: number;
}

/** One simulated host, as the quickstart and destroyFleetAt see it. */
export interface HostRecord {
  index: number;
  name: string;
  netns: string;
  veth: string;
  address: string;
  poolPath: string;
  stateDir: string;
  logFile: string;
  labels: Record<string, string>;
  /** `gild agent run` flags of this host only (after the fleet's agentArgs). */
  agentArgs?: string[];
  /** Environment of this host's agent only (added to the harness's). */
  agentEnv?: Record<string, string>;
  /** The `gild` CLI (bin.js) this host joins and runs its agent with, when not the fleet's own. */
  cli?: string;
}

/**
 * Everything a fleet made, written as it is made, so that another process can undo it from this file
 * alone (`destroyFleetAt`). Lists only grow while making; undo removes entries as it goes.
 */
export interface FleetState {
  version: 1;
  id: string;
  dir: string;
  /** The fleet made the dir, so destroying removes it. */
  ownDir: boolean;
  createdAt: number;
  enter: NetnsEnter;
  subnet: string;
  bridgeAddress: string;
  controllerPort: number;
  controllerUrl: string;
  controllerDataDir: string;
  controllerPool: string;
  controllerLogFile: string;
  controllerArgs: string[];
  agentArgs: string[];
  /** The bridge, once `ip link add` was attempted. */
  bridge: string | null;
  netns: string[];
  /** Root-namespace ends of the veth pairs. */
  veths: string[];
  pools: PoolRecord[];
  /** Processes the fleet started that may still run (controller, agents). */
  processes: ProcessRecord[];
  /**
   * Files outside the fleet's dir that its processes leave (libfaketime's in /dev/shm, faketime-files.ts),
   * removed once those processes are gone. Absent in a state file written before it was recorded.
   */
  sharedMemory?: string[];
  hosts: HostRecord[];
}

/** Write the state atomically (a reader never sees half a file). */
export function writeFleetState(state: FleetState): void {
  const path = join(state.dir, FLEET_STATE_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, path);
}

/** The state of the fleet in `dir`, or undefined when there is none (never made, or already destroyed). */
export function readFleetState(dir: string): FleetState | undefined {
  const path = join(dir, FLEET_STATE_FILE);
  if (!existsSync(path)) return undefined;
  const state = JSON.parse(readFileSync(path, "utf8")) as FleetState;
  if (state.version !== 1) throw new Error(`${path}: unknown fleet state version ${String(state.version)}`);
  return state;
}
