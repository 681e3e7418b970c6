/**
 * The local fleet: a controller and N agents on this one machine, each agent in its own network
 * namespace on a bridge, every pool its own loopback btrfs. Used by the end-to-end tests and the
 * quickstart:
 *
 *   const fleet = await createFleet({ hosts: 3, log: console.log });
 *   await fleet.gildJson(["hosts"]);
 *   await fleet.destroy();
 *
 * Everything made is recorded in <dir>/fleet.json as it is made, so destroyFleetAt(dir) undoes a fleet
 * that another (or a killed) process made. Needs root, btrfs and iproute2, and a built CLI.
 */
export {
  type AppInstanceView,
  appInstances,
  type BusyboxAppOptions,
  busyboxAppArgs,
  createBusyboxApp,
  deployApp,
  fetchPage,
} from "./apps.js";
export { type CaptureResult, capture } from "./capture.js";
export { type Answer, apiRequest } from "./controller-http.js";
export { createFleet } from "./create-fleet.js";
export { destroyFleetAt } from "./destroy-fleet.js";
export { logTail } from "./fleet-context.js";
export {
  FLEET_STATE_FILE,
  type FleetState,
  type HostRecord,
  type NetnsEnter,
  type PoolRecord,
  readFleetState,
} from "./fleet-state.js";
export {
  type HostUpdateStatusView,
  hostUpdateStatus,
  REBOOT_BY_RESTART_ENV,
  standInForReboots,
  watchHostUpdate,
} from "./host-updates.js";
export {
  type BusyboxImageOptions,
  createBusyboxImage,
  type ImageUpdateOptions,
  type ImageVersionView,
  imageUpdateArgs,
  updateImage,
} from "./images.js";
export { fleetLeftovers, fleetNspawnFiles } from "./leftovers.js";
export type { ProcessRecord } from "./process-record.js";
export { findRepoRoot, gildCliPath } from "./repo-root.js";
export { journaledKinds, type RolloutStatusView, rolloutStatus, watchRollout } from "./rollouts.js";
export type {
  ExecOptions,
  Fleet,
  FleetHost,
  FleetHostStatus,
  FleetOptions,
  GildOptions,
  ProgramResult,
  SpawnInNetnsOptions,
} from "./types.js";
