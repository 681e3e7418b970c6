import { writeFileSync } from "node:fs";
import { detectStreamCapabilities, ImageStore, Pool } from "@gild/btrfs";
import { pino } from "pino";
import { buildController, type Controller } from "./app.js";
import type { ControllerConfig } from "./config.js";
import { ensureAdminToken, ensureSigningKey, ensureTls } from "./pki.js";
import { Store } from "./store/store.js";

/** What `gild` on the controller machine reads to find it: URL, admin token file, CA. */
export interface CliConfigFile {
  url: string;
  tokenFile: string;
  caFile: string | null;
}

/** The one pino instance of the controller process; tokens and credentials are redacted. */
export function createControllerLogger(level: string) {
  return pino({
    level,
    base: { service: "gild-controller" },
    redact: {
      paths: ["req.headers.authorization", "*.token", "*.credential", "token", "credential"],
      censor: "[redacted]",
    },
  });
}

/**
 * Run the controller until SIGTERM/SIGINT: open state, pool and keys (made at first start), listen,
 * and tell agents apart from a restart (offline grace).
 */
export async function runController(config: ControllerConfig): Promise<Controller> {
  const log = createControllerLogger(config.logLevel);
  if (config.insecureDev) {
    log.warn("insecure dev mode: plain http/ws without TLS; tokens and credentials travel in clear text");
  }
  const store = Store.open(config.paths.database);
  const pool = await Pool.open(config.pool, { create: true, log });
  const imageStore = new ImageStore(pool);
  const capabilities = await detectStreamCapabilities();
  const tls = ensureTls(config);
  const adminToken = ensureAdminToken(config);
  const signing = ensureSigningKey(config);
  const controller = await buildController({
    config,
    log,
    store,
    pool,
    imageStore,
    capabilities,
    tls,
    adminToken,
    signing,
  });
  await controller.services.images.reconcile();
  await controller.app.listen({ host: config.listenHost, port: config.listenPort });
  const cliConfig: CliConfigFile = {
    url: config.publicUrl,
    tokenFile: config.paths.adminToken,
    caFile: config.insecureDev ? null : config.paths.caCert,
  };
  writeFileSync(config.paths.cliConfig, `${JSON.stringify(cliConfig, null, 2)}\n`, { mode: 0o600 });
  controller.services.hub.startOfflineGrace(config.offlineGraceMs);
  log.info(
    {
      url: config.publicUrl,
      pool: config.pool,
      caPin: tls.caPin,
      compressedStreams: capabilities.canSendCompressed && config.compressedStreams,
    },
    "controller listening",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    await controller.close();
    store.close();
    log.flush();
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
  return controller;
}
