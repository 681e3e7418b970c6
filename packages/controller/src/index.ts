export { describeApi } from "./api-document.js";
export { buildController, type Controller, type ControllerDeps } from "./app.js";
export {
  type ControllerConfig,
  DEFAULT_CONTROLLER_DIR,
  DEFAULT_CONTROLLER_PORT,
  type RawControllerConfig,
  resolveControllerConfig,
} from "./config.js";
export { DashboardSessions } from "./dashboard-sessions.js";
export { HOST_CERT_VALIDITY_MS, issueHostCertificate } from "./host-certificates.js";
export {
  type CliConfigFile,
  createControllerLogger,
  openControllerState,
  type RunningController,
  runController,
  startController,
} from "./main.js";
export { PEER_TICKET_TTL_MS, PeerSourcing } from "./peer-sourcing.js";
export { certificateSerial } from "./pki.js";
export { CONTENT_SECURITY_POLICY } from "./security-headers.js";
export type { ControllerImageBuilder, ControllerImageStore } from "./services.js";
export type { DatabaseLocation, Db } from "./store/db.js";
export { openSqlite, SqliteDb } from "./store/sqlite-db.js";
export { Store } from "./store/store.js";
