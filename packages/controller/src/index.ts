export { buildController, type Controller, type ControllerDeps } from "./app.js";
export type { AppInstanceView, AppView, DeployEvent } from "./app-service.js";
export {
  type ControllerConfig,
  DEFAULT_CONTROLLER_DIR,
  DEFAULT_CONTROLLER_PORT,
  type RawControllerConfig,
  resolveControllerConfig,
} from "./config.js";
export {
  type CliConfigFile,
  createControllerLogger,
  type RunningController,
  runController,
  startController,
} from "./main.js";
export type { RolloutHostView, RolloutView } from "./rollout-view.js";
export type { HostView } from "./routes/hosts.js";
export type { AuditEntry } from "./store/audit-repo.js";
