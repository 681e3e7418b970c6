import { mkdir, open, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { type ImageStore, snapshotSubvolume } from "@gild/btrfs";
import { APP_DEFAULTS, GildError, type HealthSpec, type Logger } from "@gild/core";
import type {
  AppInstance,
  AppSpecMessage,
  DeployApp,
  DeployResult,
  LogChunk,
  ReadLogs,
  RemoveApp,
  RollbackApp,
} from "@gild/protocol";
import {
  type ContainerSpec,
  HealthMonitor,
  type HealthState,
  type ProbeSpec,
  type RuntimeDriver,
  resolveProbe,
  waitHealthy,
} from "@gild/runtime";
import { KeyedLock } from "../keyed-lock.js";
import { AppLayout, type GenerationMeta } from "./app-layout.js";

/** A failed switch: the coded error, carrying the DeployResult the controller records with it. */
export class SwitchFailed extends GildError {
  readonly result: { deploy: DeployResult };

  constructor(message: string, result: DeployResult, hint?: string) {
    super("GILD_HEALTH_FAILED", message, { hint });
    this.result = { deploy: result };
  }
}

interface AppRuntimeState {
  monitor: HealthMonitor | undefined;
  generation: number | null;
  /** A deploy or rollback owns the containers right now: no automatic restart. */
  busy: boolean;
  restartTimer: NodeJS.Timeout | undefined;
  restarts: number;
  startedAt: number | null;
}

const MAX_LOG_CHUNK = 256 * 1024;
// Without a probe, an app is healthy once its container kept running this long.
const RUNNING_IS_HEALTHY_MS = 3_000;

/** The container's view of the data bind mount and config gild writes into each generation. */
function containerEnv(meta: GenerationMeta): Record<string, string> {
  return {
    ...meta.env,
    GILD_APP: meta.app,
    GILD_GENERATION: String(meta.generation),
    GILD_IMAGE: `${meta.imageLine}@${meta.imageVersion}`,
  };
}

/**
 * Apps on this host: each generation a writable snapshot of an image version, run in a container;
 * switch with a health gate and a local rollback; the previous generation kept for RollbackApp; data
 * in data/<app>, bind-mounted, untouched by switches. The pool and the running containers are the
 * truth: `reconcile` re-adopts what runs and starts what should.
 */
export class AppManager {
  readonly layout: AppLayout;
  private readonly state = new Map<string, AppRuntimeState>();
  private readonly locks = new KeyedLock();
  private readonly log: Logger;
  private closed = false;
  private unsubscribeExit: (() => void) | undefined;

  constructor(
    private readonly deps: {
      store: ImageStore;
      driver: RuntimeDriver;
      log: Logger;
      /** Called when anything the inventory reports changed (health, generation). */
      onChange: () => void;
    },
  ) {
    this.layout = new AppLayout(deps.store.pool);
    this.log = deps.log.child({ component: "apps" });
  }

  private appState(app: string): AppRuntimeState {
    let s = this.state.get(app);
    if (!s) {
      s = {
        monitor: undefined,
        generation: null,
        busy: false,
        restartTimer: undefined,
        restarts: 0,
        startedAt: null,
      };
      this.state.set(app, s);
    }
    return s;
  }

  /** At start: re-adopt surviving containers, stop leftovers of interrupted switches, start what should run. */
  async reconcile(): Promise<void> {
    const adopted = await this.deps.driver.adopt();
    this.unsubscribeExit = this.deps.driver.onExit((status) =>
      this.onContainerExit(status.app, status.generation, status.exitCode),
    );
    for (const app of await this.layout.apps()) {
      await this.locks.run(app, async () => {
        const current = await this.layout.current(app);
        for (const c of adopted.filter((a) => a.app === app && a.generation !== current)) {
          this.log.warn(
            { app, generation: c.generation },
            "stopping a container left by an interrupted switch",
          );
          await this.deps.driver.stop(app, c.generation);
        }
        if (current === null) return;
        const meta = await this.layout.readMeta(app, current);
        if (!meta) return;
        const running = adopted.some((a) => a.app === app && a.generation === current && a.running);
        if (running) this.log.info({ app, generation: current }, "re-adopted a running container");
        else {
          this.log.info({ app, generation: current }, "starting the current generation");
          await this.deps.driver.start(this.containerSpec(meta));
        }
        const s = this.appState(app);
        s.generation = current;
        s.startedAt = (await this.deps.driver.status(app, current)).startedAt;
        this.startMonitor(meta);
      });
    }
  }

  close(): void {
    this.closed = true;
    this.unsubscribeExit?.();
    for (const s of this.state.values()) {
      s.monitor?.stop();
      clearTimeout(s.restartTimer);
    }
    this.deps.driver.close();
  }

  private containerSpec(meta: GenerationMeta): ContainerSpec {
    return {
      app: meta.app,
      generation: meta.generation,
      rootfs: this.layout.generationDir(meta.app, meta.generation),
      command: meta.command,
      env: containerEnv(meta),
      binds: meta.dataMount ? [{ source: this.layout.dataDir(meta.app), target: meta.dataMount }] : [],
      logFile: this.layout.logFile(meta.app, meta.generation),
      stopTimeoutMs: meta.stopTimeoutMs,
    };
  }

  private startMonitor(meta: GenerationMeta): void {
    const s = this.appState(meta.app);
    s.monitor?.stop();
    s.monitor = undefined;
    const probe = meta.health && probeOf(meta.health);
    if (!probe) {
      this.deps.onChange();
      return;
    }
    const monitor = new HealthMonitor(probe, {
      exec: (argv, opts) => this.deps.driver.exec(meta.app, meta.generation, argv, opts),
      log: this.log,
    });
    monitor.onChange((state: HealthState) => {
      this.log.info(
        { app: meta.app, generation: meta.generation, health: state.health, detail: state.detail },
        "health changed",
      );
      this.deps.onChange();
    });
    s.monitor = monitor;
    monitor.start();
    this.deps.onChange();
  }

  /** Wait until a started generation is healthy (probe, or plain running without one), or why not. */
  private async waitHealthy(
    meta: GenerationMeta,
    deadlineAt: number,
  ): Promise<{ ok: true } | { ok: false; reason: string }> {
    const isAlive = async () => {
      const st = await this.deps.driver.status(meta.app, meta.generation);
      return { running: st.running, exitCode: st.exitCode, signal: st.signal };
    };
    const probe = meta.health && probeOf(meta.health);
    if (!probe) {
      const until = Math.min(deadlineAt, Date.now() + RUNNING_IS_HEALTHY_MS);
      while (Date.now() < until) {
        const alive = await isAlive();
        if (!alive.running)
          return {
            ok: false,
            reason: `the container exited (code ${alive.exitCode ?? "unknown"}) right after start`,
          };
        await delay(100);
      }
      return { ok: true };
    }
    const verdict = await waitHealthy(probe, {
      deadlineAt,
      isAlive,
      exec: (argv, opts) => this.deps.driver.exec(meta.app, meta.generation, argv, opts),
      logFile: this.layout.logFile(meta.app, meta.generation),
    });
    return verdict.ok ? { ok: true } : { ok: false, reason: verdict.reason };
  }

  /** DeployApp: a new generation from an image version, switched to with a health gate and local rollback. */
  async deploy(command: DeployApp): Promise<DeployResult> {
    const spec = command.spec as AppSpecMessage;
    const app = spec.name ?? "";
    const version = command.imageVersion ?? 0;
    const line = spec.imageLine ?? "";
    return this.locks.run(app, async () => {
      if (!(await this.deps.store.exists(line, version))) {
        throw new GildError("GILD_IMAGE_NOT_FOUND", `${line}@${version} is not on this host`, {
          hint: "push it first: gild image push",
        });
      }
      // The controller's fingerprint of what runs; the same spec and version is already deployed when it matches.
      const specHash = command.specHash ?? "";
      const current = await this.layout.current(app);
      const currentMeta = current === null ? null : await this.layout.readMeta(app, current);
      if (currentMeta && currentMeta.imageVersion === version && currentMeta.specHash === specHash) {
        const status = await this.deps.driver.status(app, current as number);
        if (status.running) {
          return {
            name: app,
            generation: current as number,
            imageVersion: version,
            rolledBack: false,
            previousGeneration: (await this.layout.previous(app, current)) ?? 0,
          };
        }
      }
      const generation = await this.layout.nextGeneration(app);
      await mkdir(this.layout.appDir(app), { recursive: true });
      await mkdir(this.layout.dataDir(app), { recursive: true });
      const meta: GenerationMeta = {
        app,
        generation,
        imageLine: line,
        imageVersion: version,
        specHash,
        command: [...(spec.command ?? [])],
        env: { ...(spec.env ?? {}) },
        dataMount: spec.dataMount ?? "",
        port: spec.port ?? 0,
        health: spec.health ? normalizeHealth(spec.health) : null,
        stopTimeoutMs: spec.stopTimeoutMs || APP_DEFAULTS.stopTimeoutMs,
        createdAt: Date.now(),
      };
      // A writable snapshot of the image: instant, and sharing every block with it.
      await snapshotSubvolume(
        this.deps.store.pool.rootfsPath(line, version),
        this.layout.generationDir(app, generation),
      );
      await this.writeAppConfig(meta);
      await this.layout.writeMeta(meta);
      return this.switchTo(meta, current, command.healthyDeadlineMs || APP_DEFAULTS.healthyDeadlineMs, true);
    });
  }

  /** RollbackApp: back to the previous generation, already on the pool: no download. */
  async rollback(command: RollbackApp): Promise<DeployResult> {
    const app = command.name ?? "";
    return this.locks.run(app, async () => {
      const current = await this.layout.current(app);
      const previous = await this.layout.previous(app, current);
      const meta = previous === null ? null : await this.layout.readMeta(app, previous);
      if (previous === null || !meta) {
        throw new GildError(
          "GILD_NO_PREVIOUS_GENERATION",
          `${app} has no previous generation on this host to roll back to`,
        );
      }
      return this.switchTo(meta, current, command.healthyDeadlineMs || APP_DEFAULTS.healthyDeadlineMs, false);
    });
  }

  /** The config a generation carries inside its root: /etc/gild/app.json. */
  private async writeAppConfig(meta: GenerationMeta): Promise<void> {
    const dir = join(this.layout.generationDir(meta.app, meta.generation), "etc", "gild");
    await mkdir(dir, { recursive: true });
    const config = {
      app: meta.app,
      generation: meta.generation,
      image: `${meta.imageLine}@${meta.imageVersion}`,
      env: meta.env,
      data: meta.dataMount || null,
      port: meta.port || null,
    };
    await writeFile(join(dir, "app.json"), `${JSON.stringify(config, null, 2)}\n`);
  }

  /**
   * Stop the old generation, start the target, wait until healthy; on failure stop the target, start
   * the old one again, and throw SwitchFailed with the reason (probe, exit code, log tail).
   */
  private async switchTo(
    meta: GenerationMeta,
    from: number | null,
    healthyDeadlineMs: number,
    isNew: boolean,
  ): Promise<DeployResult> {
    const app = meta.app;
    const s = this.appState(app);
    s.busy = true;
    clearTimeout(s.restartTimer);
    s.monitor?.stop();
    const fromMeta = from === null ? null : await this.layout.readMeta(app, from);
    try {
      if (from !== null && from !== meta.generation) {
        await this.deps.driver.stop(app, from, { timeoutMs: fromMeta?.stopTimeoutMs ?? meta.stopTimeoutMs });
      }
      let verdict: { ok: true } | { ok: false; reason: string };
      try {
        await this.deps.driver.start(this.containerSpec(meta));
        verdict = await this.waitHealthy(meta, Date.now() + healthyDeadlineMs);
      } catch (err) {
        verdict = { ok: false, reason: `the container did not start: ${(err as Error).message}` };
      }
      if (verdict.ok) {
        await this.layout.setCurrent(app, meta.generation);
        s.generation = meta.generation;
        s.restarts = 0;
        s.startedAt = Date.now();
        await this.prune(app, [meta.generation, ...(from === null ? [] : [from])]);
        this.startMonitor(meta);
        this.log.info(
          { app, generation: meta.generation, image: `${meta.imageLine}@${meta.imageVersion}`, from },
          "switched",
        );
        return {
          name: app,
          generation: meta.generation,
          imageVersion: meta.imageVersion,
          rolledBack: false,
          previousGeneration: from ?? 0,
        };
      }
      this.log.warn(
        { app, generation: meta.generation, reason: verdict.reason },
        "new generation unhealthy; rolling back locally",
      );
      await this.deps.driver
        .stop(app, meta.generation, { timeoutMs: meta.stopTimeoutMs })
        .catch(() => undefined);
      if (from !== null && fromMeta && from !== meta.generation) {
        await this.deps.driver.start(this.containerSpec(fromMeta));
        s.generation = from;
        s.startedAt = Date.now();
        this.startMonitor(fromMeta);
      }
      if (isNew) await this.layout.removeGeneration(app, meta.generation);
      const result: DeployResult = {
        name: app,
        generation: from ?? 0,
        imageVersion: fromMeta?.imageVersion ?? 0,
        rolledBack: from !== null,
        reason: verdict.reason,
        previousGeneration: meta.generation,
      };
      throw new SwitchFailed(
        `${app} generation ${meta.generation} (${meta.imageLine}@${meta.imageVersion}) did not turn healthy: ${verdict.reason}${from !== null ? `; generation ${from} runs again` : ""}`,
        result,
        `see its output: gild app logs ${app} --generation ${meta.generation}`,
      );
    } finally {
      s.busy = false;
      this.deps.onChange();
    }
  }

  /** Keep the last two generations; remove the rest (snapshots and meta, logs stay). */
  private async prune(app: string, keep: number[]): Promise<void> {
    for (const generation of await this.layout.generations(app)) {
      if (keep.includes(generation)) continue;
      await this.deps.driver.stop(app, generation).catch(() => undefined);
      await this.layout.removeGeneration(app, generation);
    }
  }

  /** RemoveApp: stop its containers, remove its generations, and its data when asked to. */
  async remove(command: RemoveApp): Promise<void> {
    const app = command.name ?? "";
    await this.locks.run(app, async () => {
      const s = this.appState(app);
      s.monitor?.stop();
      clearTimeout(s.restartTimer);
      s.busy = true;
      for (const c of await this.deps.driver.list()) {
        if (c.app === app) await this.deps.driver.stop(app, c.generation);
      }
      await this.deps.store.pool.removeTree(this.layout.appDir(app));
      if (command.purgeData) await this.deps.store.pool.removeTree(this.layout.dataDir(app));
      this.state.delete(app);
      this.deps.onChange();
    });
  }

  /** ReadLogs: a chunk of a generation's container output (negative offset: from the end). */
  async readLogs(command: ReadLogs): Promise<LogChunk> {
    const app = command.name ?? "";
    const generation = command.generation || (await this.layout.current(app));
    if (!generation) throw new GildError("GILD_APP_NOT_FOUND", `${app} has no generation on this host`);
    const path = this.layout.logFile(app, generation);
    const size = await stat(path).then(
      (s) => s.size,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT")
          throw new GildError("GILD_NOT_FOUND", `no output recorded for ${app} generation ${generation}`);
        throw err;
      },
    );
    const requested = command.offset ?? 0;
    const from = requested < 0 ? Math.max(0, size + requested) : Math.min(requested, size);
    const length = Math.min(command.maxBytes || 64 * 1024, MAX_LOG_CHUNK, size - from);
    const data = Buffer.alloc(Math.max(0, length));
    if (length > 0) {
      const handle = await open(path, "r");
      try {
        await handle.read(data, 0, length, from);
      } finally {
        await handle.close();
      }
    }
    return { generation, data, nextOffset: from + length, size };
  }

  /** The apps part of the inventory. */
  async inventory(): Promise<AppInstance[]> {
    const out: AppInstance[] = [];
    for (const app of await this.layout.apps()) {
      const current = await this.layout.current(app);
      if (current === null) continue;
      const meta = await this.layout.readMeta(app, current);
      if (!meta) continue;
      const previous = await this.layout.previous(app, current);
      const previousMeta = previous === null ? null : await this.layout.readMeta(app, previous);
      const s = this.appState(app);
      const status = await this.deps.driver.status(app, current);
      let health: string;
      let detail: string;
      let since: number;
      if (s.monitor && status.running) {
        health = s.monitor.state.health;
        detail = s.monitor.state.detail;
        since = s.monitor.state.since ?? 0;
      } else {
        health = status.running ? (meta.health ? "unknown" : "healthy") : "unhealthy";
        detail = status.running ? (meta.health ? "not probed yet" : "running (no probe)") : "not running";
        since = status.running ? (status.startedAt ?? 0) : 0;
      }
      out.push({
        name: app,
        generation: current,
        imageLine: meta.imageLine,
        imageVersion: meta.imageVersion,
        state: s.busy ? "switching" : status.running ? "running" : "stopped",
        health,
        healthDetail: detail,
        healthSinceMs: since,
        previousGeneration: previous ?? 0,
        previousImageVersion: previousMeta?.imageVersion ?? 0,
        generations: await this.layout.generations(app),
        specHash: meta.specHash,
      });
    }
    return out;
  }

  /** A container ended on its own: restart the current generation with backoff (1 s, doubling, max 60 s). */
  private onContainerExit(app: string, generation: number, exitCode: number | null): void {
    if (this.closed) return;
    const s = this.appState(app);
    if (s.busy || s.generation !== generation) return;
    this.deps.onChange();
    const ranMs = s.startedAt === null ? 0 : Date.now() - s.startedAt;
    if (ranMs > 60_000) s.restarts = 0;
    const wait = Math.min(60_000, 1000 * 2 ** s.restarts);
    s.restarts++;
    this.log.warn({ app, generation, exitCode, restartInMs: wait }, "container exited; restarting it");
    clearTimeout(s.restartTimer);
    s.restartTimer = setTimeout(() => {
      void this.locks.run(app, async () => {
        if (this.closed || s.busy || s.generation !== generation) return;
        const meta = await this.layout.readMeta(app, generation);
        if (!meta) return;
        try {
          await this.deps.driver.start(this.containerSpec(meta));
          s.startedAt = Date.now();
          this.startMonitor(meta);
        } catch (err) {
          this.log.error({ app, generation, err: (err as Error).message }, "restart failed");
          this.onContainerExit(app, generation, null);
        }
      });
    }, wait);
  }
}

/**
 * The wire health probe with core's defaults filled, as recorded in a generation's meta. Checked here,
 * before the deploy makes anything: a probe the runtime cannot run is refused with GILD_INVALID_SPEC.
 */
function normalizeHealth(h: NonNullable<AppSpecMessage["health"]>): HealthSpec {
  const d = APP_DEFAULTS.health;
  const health: HealthSpec = {
    kind: (h.kind ?? "http") as HealthSpec["kind"],
    target: h.target ?? "",
    command: [...(h.command ?? [])],
    intervalMs: h.intervalMs || d.intervalMs,
    timeoutMs: h.timeoutMs || d.timeoutMs,
    initialDelayMs: h.initialDelayMs ?? d.initialDelayMs,
    minHealthyMs: h.minHealthyMs ?? d.minHealthyMs,
  };
  probeOf(health);
  return health;
}

/** The runtime's probe for a recorded health spec. */
function probeOf(health: HealthSpec): ProbeSpec {
  return resolveProbe({
    kind: health.kind,
    ...(health.target ? { target: health.target } : {}),
    ...(health.command.length > 0 ? { command: health.command } : {}),
    intervalMs: health.intervalMs,
    timeoutMs: health.timeoutMs,
    initialDelayMs: health.initialDelayMs,
    minHealthyMs: health.minHealthyMs,
  });
}
