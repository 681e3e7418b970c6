/** The tcp target rule lives in core (app specs are checked with it); probes use the same. */
export { parseTcpTarget } from "@gild/core";
export { createRuntimeDriver } from "./create-driver.js";
export {
  type Health,
  HealthMonitor,
  type HealthMonitorOptions,
  type HealthSeed,
  type HealthState,
} from "./health-monitor.js";
export { type HostCommandOptions, type HostCommandOutcome, runHostCommand } from "./host-command.js";
export { currentBootId, rebootHost } from "./host-reboot.js";
export {
  aptStateStamp,
  type PendingUpdates,
  parseAptSimulation,
  pendingUpdates,
  type RebootRequired,
  rebootRequired,
} from "./host-updates.js";
export {
  type BuildOptions,
  type DebootstrapSource,
  type DirBuildOptions,
  ImageBuilder,
  type UpdateOptions,
} from "./image-build.js";
export { machineName } from "./machine-name.js";
export { buildCommandNspawnArgs, buildNspawnArgs } from "./nspawn-args.js";
export type { PidRecord } from "./pid-file.js";
export { type ContainerExec, type ProbeContext, type ProbeResult, probeOnce } from "./probe-once.js";
export {
  PROBE_DEFAULTS,
  type ProbeInput,
  type ProbeKind,
  type ProbeSpec,
  resolveProbe,
} from "./probe-spec.js";
export { findContainerInit, isProcessAlive } from "./proc.js";
export { validateContainerSpec } from "./spec.js";
export {
  buildSystemdRunArgs,
  parseListUnits,
  parseSystemctlShow,
  parseTimespanMs,
  parseUnitName,
  type UnitState,
  unitName,
  unitStatus,
} from "./systemd-units.js";
export { tailFile } from "./tail-file.js";
export { type SyncTreeOptions, syncTree, type TreeSyncStats } from "./tree-sync.js";
export type {
  BindMount,
  ContainerSpec,
  ContainerStatus,
  DriverKind,
  ExecResult,
  RuntimeDriver,
  RuntimeDriverOptions,
  StopResult,
} from "./types.js";
export {
  type AliveCheck,
  type WaitHealthyOptions,
  type WaitHealthyResult,
  waitHealthy,
} from "./wait-healthy.js";
