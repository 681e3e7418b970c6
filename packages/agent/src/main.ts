import { join } from "node:path";
import { detectStreamCapabilities, ImageStore, Pool, SpawnHelper } from "@gild/btrfs";
import { assertRoot, GILD_VERSION, GildError, type Logger } from "@gild/core";
import { type Inventory, PROTOCOL_VERSION } from "@gild/protocol";
import { createRuntimeDriver } from "@gild/runtime";
import { pino } from "pino";
import { AppManager } from "./apps/app-manager.js";
import { CommandRunner, type Executors } from "./command-runner.js";
import type { AgentConfig } from "./config.js";
import { ControlConnection } from "./connection.js";
import { HostMaintenance } from "./executors/host-maintenance.js";
import { pullImage } from "./executors/pull-image.js";
import { hostFacts } from "./facts.js";
import { inventoryFingerprint, readInventory } from "./inventory.js";
import { CommandJournal } from "./journal.js";
import { KeyedLock } from "./keyed-lock.js";
import { MaintenanceFacts } from "./maintenance-facts.js";
import { AgentMetrics, serveMetrics } from "./metrics.js";
import { startPeering } from "./peer/peering.js";
import { loadSecrets } from "./state.js";

/**
 * Exit status of an agent that cannot work until a person acts (EX_CONFIG): refused for good (revoked,
 * incompatible), not joined, a bad config, or damaged state files. The systemd unit does not restart
 * it (RestartPreventExitStatus=78): a restart loop would change nothing.
 */
export const EXIT_REFUSED = 78;

const NOT_FIXED_BY_RESTART: readonly string[] = [
  "GILD_CREDENTIAL_INVALID",
  "GILD_PROTO_VERSION",
  "GILD_NOT_JOINED",
  "GILD_CONFIG_INVALID",
  "GILD_STATE_CORRUPT",
  "GILD_NOT_ROOT",
];

/** The exit status for an error that stopped the agent: EXIT_REFUSED when restarting cannot help, else 1. */
export function agentExitCode(err: unknown): number {
  return err instanceof GildError && NOT_FIXED_BY_RESTART.includes(err.code) ? EXIT_REFUSED : 1;
}

export function createAgentLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "gild-agent" },
    redact: { paths: ["credential", "*.credential", "headers.authorization"], censor: "[redacted]" },
  });
}

export interface RunningAgent {
  stop(): Promise<void>;
  /** Resolves when the agent stops (signal, or a refusal it cannot fix). */
  done: Promise<number>;
}

/** Hooks for tests only (the CLI sets them from its environment); never set on a real server. */
export interface AgentTestHooks {
  /**
   * GILD_TEST_REBOOT=restart: a RebootHost command stops every app and exits the agent with
   * EXIT_REBOOT_BY_RESTART instead of rebooting; the test kit starts it again as if after a boot.
   */
  rebootByRestart?: boolean;
  /** Where the host flags a required reboot, instead of /run/reboot-required. */
  rebootRequiredFile?: string;
}

/** Run the agent: open the pool (sweeping .staging), connect, report inventory, execute commands. */
export async function runAgent(
  config: AgentConfig,
  log: Logger = createAgentLogger(config.logLevel),
  hooks: AgentTestHooks = {},
): Promise<RunningAgent> {
  assertRoot("gild agent run");
  const secrets = await loadSecrets(config.stateDir);
  // Forked first, while the agent is small: the pool's programs start from it, not from the agent.
  const launcher = new SpawnHelper({ socketDir: join(config.stateDir, "run", "spawn"), log });
  launcher.warm();
  const pool = await Pool.open(config.pool, { create: true, log, launcher });
  const store = new ImageStore(pool);
  const capabilities = await detectStreamCapabilities();
  const journal = new CommandJournal(config.stateDir);
  await journal.open();
  const driver = createRuntimeDriver(config.runtime, { runDir: join(config.stateDir, "run"), log });
  log.info({ runtime: driver.kind, configured: config.runtime }, `runtime driver: ${driver.kind}`);
  const facts = await hostFacts({ runtime: driver.kind });
  // Before anything that calls back into sendInventory: an await below it would let a callback run
  // before sendInventory exists.
  const peer = await startPeering(config, secrets, join(pool.paths.root, ".peer-cache"), log);
  // Counting pending updates takes a few seconds: it runs beside everything else, and each look that
  // ends sends the facts in an inventory (the connection does not wait for it).
  const maintenanceFacts = new MaintenanceFacts({
    log,
    stateDir: config.stateDir,
    onChange: () => void sendInventory(false),
  });
  void maintenanceFacts.start();
  const imageLock = new KeyedLock();
  const metrics = new AgentMetrics();
  // Started before anything runs, so a port already taken stops the agent with a clear error.
  const metricsServer = config.metricsListen ? await serveMetrics(config.metricsListen, metrics, log) : null;
  const apps = new AppManager({ store, driver, log, metrics, onChange: () => void sendInventory(false) });

  let lastInventory = "";
  let inventoryBusy: Promise<void> | undefined;
  const sendInventory = (force: boolean): Promise<void> => {
    const run = async () => {
      const inventory: Inventory = await readInventory(
        store,
        () => apps.inventory(),
        () => maintenanceFacts.current(),
      );
      const fingerprint = inventoryFingerprint(inventory);
      if (!force && fingerprint === lastInventory) return;
      if (connection.send({ inventory })) lastInventory = fingerprint;
    };
    inventoryBusy = (inventoryBusy ?? Promise.resolve()).then(run).catch((err: unknown) => {
      log.warn({ err: (err as Error).message }, "reading the inventory failed");
    });
    return inventoryBusy;
  };

  if (hooks.rebootByRestart)
    log.warn("test hook GILD_TEST_REBOOT=restart: a reboot command restarts the agent only");
  const maintenance = new HostMaintenance({
    stateDir: config.stateDir,
    log,
    stopApps: () => apps.stopAll(),
    restartApps: () => apps.restartAll(),
    rebootByRestart: hooks.rebootByRestart ?? false,
    exit: (code) => void stop(code),
    ...(hooks.rebootRequiredFile ? { rebootRequiredFile: hooks.rebootRequiredFile } : {}),
  });

  const executors: Executors = {
    pullImage: (pull, ctx) =>
      imageLock.run("images", async () => ({
        pull: await pullImage(pull, {
          store,
          controllerUrl: secrets.identity.controllerUrl,
          credential: secrets.credential,
          caPem: secrets.caPem,
          signingPublicKeyPem: secrets.signingPublicKeyPem,
          maxDownloadRate: config.maxDownloadRate,
          log,
          progress: ctx.progress,
          peering: peer,
        }),
      })),
    removeImage: (remove) =>
      imageLock.run("images", async () => {
        const { line, version } = remove;
        if (await store.exists(line, version)) await store.remove(line, version);
        return {};
      }),
    deployApp: async (deploy, ctx) => ({ deploy: await apps.deploy(deploy, ctx.commandId) }),
    rollbackApp: async (rollback, ctx) => ({ deploy: await apps.rollback(rollback, ctx.commandId) }),
    removeApp: async (remove) => {
      await apps.remove(remove);
      return {};
    },
    readLogs: async (read) => ({ logs: await apps.readLogs(read) }),
    // What the command did to the host's packages shows in the next inventory.
    runHostCommand: (command) => maintenance.run(command).finally(() => void maintenanceFacts.refresh()),
    rebootHost: (_reboot, ctx) => maintenance.reboot(ctx.commandId),
  };

  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));
  const runner = new CommandRunner({
    journal,
    executors,
    send: (status) => connection.send({ commandStatus: status }),
    reportChanges: () => sendInventory(false),
    // A switch's record (and a reboot's) is kept until its result is journaled: then it is settled.
    onFinal: async (commandId, kind) => {
      if (kind === "rebootHost") await maintenance.settle(commandId);
      else await apps.settle(commandId);
    },
    onEnded: (kind, final, ms) => metrics.commandEnded(kind, final, ms),
    log,
  });
  const connection = new ControlConnection({
    controllerUrl: secrets.identity.controllerUrl,
    credential: secrets.credential,
    caPem: secrets.caPem,
    log,
    silenceTimeoutMs: config.silenceTimeoutMs,
    reconnectMaxMs: config.reconnectMaxMs,
    hello: () => ({
      protocolVersion: PROTOCOL_VERSION,
      hostId: secrets.identity.hostId,
      hostName: secrets.identity.name,
      agentVersion: GILD_VERSION,
      kernelVersion: capabilities.kernelVersion,
      btrfsProgsVersion: capabilities.progsVersion,
      labels: secrets.identity.labels,
      facts: { ...facts, ...maintenanceFacts.current(), ...peer.facts() },
      maxStreamVersion: capabilities.maxReceiveStreamVersion,
    }),
    onConnected: () => {
      runner.reconnected();
      void sendInventory(true);
    },
    onMessage: (message) => {
      if ("command" in message) {
        runner.handle(message.command).catch((err: unknown) => log.error({ err }, "command handling failed"));
      }
    },
    onFatal: (error) => {
      log.error({ code: error.code, hint: error.hint }, `stopping: ${error.message}`);
      void stop(EXIT_REFUSED);
    },
  });

  // Containers that survived an agent restart are re-adopted, not restarted; what should run, runs;
  // switches an earlier agent left are finished (and journaled) by the runner, before any command.
  for (const work of await apps.reconcile()) runner.resume(work);
  // A reboot an earlier agent began is answered now that the host is back (or is not).
  const reboot = await maintenance.resumeAfterReboot();
  if (reboot) runner.resume(reboot);
  const inventoryTimer = setInterval(() => void sendInventory(false), config.inventoryIntervalMs);
  let stopped = false;
  const stop = async (code = 0) => {
    if (stopped) return;
    stopped = true;
    clearInterval(inventoryTimer);
    maintenanceFacts.stop();
    await peer.close();
    connection.stop();
    // Containers keep running: the next agent re-adopts them.
    apps.close();
    metricsServer?.server.close();
    await inventoryBusy;
    launcher.close();
    resolveDone(code);
  };
  connection.start();
  log.info(
    {
      host: secrets.identity.name,
      controller: secrets.identity.controllerUrl,
      pool: pool.root,
      runtime: driver.kind,
    },
    "agent started",
  );
  return { stop: () => stop(0), done };
}
