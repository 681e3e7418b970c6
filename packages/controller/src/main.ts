import { mkdirSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { detectStreamCapabilities, ImageStore, Pool, SpawnHelper } from "@gild/btrfs";
import { assertRoot } from "@gild/core";
import { ImageBuilder } from "@gild/runtime";
import { pino } from "pino";
import { buildController, type Controller } from "./app.js";
import type { ControllerConfig } from "./config.js";
import {
  ensureAdminToken,
  ensureMetricsToken,
  ensureSigningKey,
  ensureTls,
  type TlsMaterial,
} from "./pki.js";
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

export interface RunningController {
  controller: Controller;
  store: Store;
  tls: TlsMaterial;
  adminToken: string;
  /** The URL it really listens on (the configured port may be 0). */
  url: string;
  close(): Promise<void>;
}

/** The controller's state and keys in its data dir (made at first start): no pool, no root needed. */
export function openControllerState(config: ControllerConfig): {
  store: Store;
  tls: TlsMaterial;
  adminToken: string;
  metricsToken: string;
  signing: { privatePem: string; publicPem: string };
} {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const store = Store.open(config.database);
  return {
    store,
    tls: ensureTls(config),
    adminToken: ensureAdminToken(config),
    metricsToken: ensureMetricsToken(config),
    signing: ensureSigningKey(config),
  };
}

/**
 * Open state, pool and keys (made at first start), build the app, reconcile images, listen, write
 * cli.json, and start the offline grace. No signal handling: `runController` adds it.
 */
export async function startController(
  config: ControllerConfig,
  options: { log?: ReturnType<typeof createControllerLogger>; now?: () => number } = {},
): Promise<RunningController> {
  const log = options.log ?? createControllerLogger(config.logLevel);
  if (config.insecureDev) {
    log.warn("insecure dev mode: plain http/ws without TLS; tokens and credentials travel in clear text");
  }
  assertRoot("gild controller run");
  const { store, tls, adminToken, metricsToken, signing } = openControllerState(config);
  // The pool's btrfs programs (send for every artifact, receive, show) start from a helper forked now,
  // while this process is small: a fork of the controller at 10,000 agents (900 MiB) blocked it for
  // 40-80 ms and then cost a fault on every page it wrote (docs/architecture.md, The spawn helper).
  const launcher = new SpawnHelper({ socketDir: join(config.dataDir, "run", "spawn"), log });
  launcher.warm();
  let pool: Pool;
  try {
    pool = await Pool.open(config.pool, { create: true, log, launcher });
  } catch (err) {
    launcher.close();
    throw err;
  }
  const imageStore = new ImageStore(pool);
  const capabilities = await detectStreamCapabilities();
  const controller = await buildController({
    config,
    log,
    store,
    imageStore,
    imageBuilder: new ImageBuilder(imageStore),
    capabilities,
    tls,
    adminToken,
    metricsToken,
    signing,
    ...(options.now ? { now: options.now } : {}),
  });
  await controller.services.images.reconcile();
  await controller.app.listen({ host: config.listenHost, port: config.listenPort });
  const port = (controller.app.server.address() as AddressInfo).port;
  const url = config.listenPort === 0 ? config.publicUrl.replace(/:0$/, `:${port}`) : config.publicUrl;
  const cliConfig: CliConfigFile = {
    url,
    tokenFile: config.paths.adminToken,
    caFile: config.insecureDev ? null : config.paths.caCert,
  };
  writeFileSync(config.paths.cliConfig, `${JSON.stringify(cliConfig, null, 2)}\n`, { mode: 0o600 });
  controller.services.hub.startOfflineGrace(config.offlineGraceMs);
  // Every active rollout resumes from its stored record and absolute clocks.
  controller.services.rolloutExecutor.resumeAll();
  // ... and every host update that is not settled.
  controller.services.hostUpdateExecutor.resumeAll();
  log.info(
    {
      url,
      pool: config.pool,
      caPin: tls.caPin,
      compressedStreams: capabilities.canSendCompressed && config.compressedStreams,
    },
    "controller listening",
  );
  let closed = false;
  return {
    controller,
    store,
    tls,
    adminToken,
    url,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await controller.close();
        store.close();
      } finally {
        launcher.close();
      }
    },
  };
}

/**
 * Run the controller until SIGTERM/SIGINT (`gild controller run`); resolves once it has stopped.
 * A shutdown that hangs is cut short after 10 s.
 */
export async function runController(config: ControllerConfig): Promise<void> {
  const log = createControllerLogger(config.logLevel);
  const running = await startController(config, { log });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "stopping");
      setTimeout(() => {
        log.error("shutdown took longer than 10 s; exiting anyway");
        resolve();
      }, 10_000).unref();
      running.close().then(
        () => resolve(),
        (err: unknown) => {
          log.error({ err }, "stopping failed");
          resolve();
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  log.flush();
}
