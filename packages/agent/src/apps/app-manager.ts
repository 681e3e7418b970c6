import { lstat, mkdir, open, readdir, rmdir, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { type ImageStore, snapshotSubvolume } from "@gild/btrfs";
import {
  APP_DEFAULTS,
  type ErrorCode,
  GildError,
  type HealthSpec,
  isErrorCode,
  type Logger,
} from "@gild/core";
import {
  type AppHealth,
  type AppInstance,
  type DeployApp,
  type DeployResult,
  emptyDeployResult,
  type LogChunk,
  type ReadLogs,
  type RemoveApp,
  type RollbackApp,
} from "@gild/protocol";
import {
  type ContainerSpec,
  HealthMonitor,
  type HealthState,
  type ProbeSpec,
  type RuntimeDriver,
  resolveProbe,
  tailFile,
  waitHealthy,
} from "@gild/runtime";
import { KeyedLock } from "../keyed-lock.js";
import { AppLayout, type GenerationMeta } from "./app-layout.js";
import { type ObservedApp, planReconcile, type ReconcileStep } from "./reconcile-plan.js";
import type { RollbackFailure, SwitchIntent, SwitchOutcome } from "./switch-intent.js";

/** A failed switch: the coded error, carrying the DeployResult the controller records with it. */
export class SwitchFailed extends GildError {
  readonly result: { deploy: DeployResult };

  constructor(code: ErrorCode, message: string, result: DeployResult, hint?: string) {
    super(code, message, { hint });
    this.result = { deploy: result };
  }
}

/** A switch an earlier agent left unsettled, for the command runner to finish and journal. */
export interface ResumedSwitch {
  commandId: string;
  kind: SwitchIntent["kind"];
  app: string;
  run: () => Promise<{ deploy: DeployResult }>;
}

interface AppRuntimeState {
  monitor: HealthMonitor | undefined;
  generation: number | null;
  /** A deploy or rollback owns the containers right now: no automatic restart. */
  busy: boolean;
  restartTimer: NodeJS.Timeout | undefined;
  restarts: number;
  startedAt: number | null;
  /** The generation the app went back to did not pass its health gate (kept in rollback-failed.json). */
  rollbackFailure: RollbackFailure | null;
}

/**
 * A health detail as the inventory carries it: at most 4096 characters, the start and the end of a
 * longer one (a rollback's reason ends with the container's last log lines).
 */
function clipDetail(detail: string): string {
  if (detail.length <= 4096) return detail;
  return `${detail.slice(0, 1024)}\n[...]\n${detail.slice(-3000)}`;
}

type Verdict = { ok: true; healthyForMs: number; detail: string } | { ok: false; reason: string };

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
    ...(meta.codeLine ? { GILD_CODE: `${meta.codeLine}@${meta.codeVersion ?? 0}` } : {}),
  };
}

/** What a generation runs, as one word: php@3, or php@3+blog@7 with code. */
const imageOf = (meta: GenerationMeta) =>
  `${meta.imageLine}@${meta.imageVersion}${meta.codeLine ? `+${meta.codeLine}@${meta.codeVersion ?? 0}` : ""}`;

/**
 * Apps on this host: each generation a writable snapshot of an image version, run in a container;
 * switch with a health gate and a local rollback that is itself health-gated; the previous generation
 * kept for RollbackApp; data in data/<app>, bind-mounted, untouched by switches. The pool and the
 * running containers are the truth: at start, `reconcile` plans (planReconcile) and executes the
 * steps back to exactly one running generation per app, finishing switches an earlier agent left.
 */
export class AppManager {
  readonly layout: AppLayout;
  private readonly state = new Map<string, AppRuntimeState>();
  private readonly locks = new KeyedLock();
  /** Command id -> app of the switch records not yet settled (their result not yet journaled). */
  private readonly unsettled = new Map<string, string>();
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
      /** Health verdict changes, restarts and removals, for the metrics. */
      metrics?: {
        healthChanged(app: string, health: string): void;
        healthIs(app: string, health: string): void;
        restarted(app: string): void;
        appRemoved(app: string): void;
      };
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
        rollbackFailure: null,
      };
      this.state.set(app, s);
    }
    return s;
  }

  /**
   * At start: for every app, observe (pool, running containers, an unsettled switch), plan, and
   * execute the plan's container steps. Interrupted switches are returned, not awaited (a health gate
   * takes up to its deadline): the command runner finishes each and journals its result.
   */
  async reconcile(): Promise<ResumedSwitch[]> {
    const adopted = await this.deps.driver.adopt();
    this.unsubscribeExit?.();
    this.unsubscribeExit = this.deps.driver.onExit((status) =>
      this.onContainerExit(status.app, status.generation, status.exitCode),
    );
    const resumed: ResumedSwitch[] = [];
    for (const app of await this.layout.apps()) {
      await this.locks.run(app, async () => {
        const s = this.appState(app);
        s.rollbackFailure = await this.layout.readRollbackFailure(app);
        const generations: number[] = [];
        for (const g of await this.layout.generations(app)) {
          if (await this.layout.readMeta(app, g)) generations.push(g);
        }
        const observed: ObservedApp = {
          app,
          current: await this.layout.current(app),
          generations,
          running: adopted.filter((a) => a.app === app && a.running).map((a) => a.generation),
          intent: await this.layout.readIntent(app),
        };
        for (const step of planReconcile(observed)) {
          const work = await this.executeStep(app, step);
          if (work) resumed.push(work);
        }
      });
    }
    return resumed;
  }

  /** One reconcile step: container steps now; switches to finish handed back for the runner. */
  private async executeStep(app: string, step: ReconcileStep): Promise<ResumedSwitch | undefined> {
    const s = this.appState(app);
    switch (step.kind) {
      case "stop":
        this.log.warn({ app, generation: step.generation, why: step.why }, "stopping a container");
        await this.deps.driver.stop(app, step.generation);
        return undefined;
      case "start": {
        const meta = await this.requireMeta(app, step.generation);
        this.log.info({ app, generation: step.generation }, "starting the current generation");
        await this.deps.driver.start(this.containerSpec(meta));
        s.generation = step.generation;
        s.startedAt = Date.now();
        return undefined;
      }
      case "watch": {
        const meta = await this.requireMeta(app, step.generation);
        s.generation = step.generation;
        s.startedAt = (await this.deps.driver.status(app, step.generation)).startedAt ?? s.startedAt;
        this.log.info({ app, generation: step.generation }, "watching the current generation");
        this.startMonitor(meta);
        return undefined;
      }
      case "resume-switch": {
        const intent = step.intent;
        this.log.warn(
          { app, from: intent.from, to: intent.to, commandId: intent.commandId },
          "finishing a switch an earlier agent began",
        );
        return this.resumed(intent, () =>
          this.locks.run(app, async () => {
            const meta = await this.requireMeta(app, intent.to);
            return this.runSwitch(intent, meta, step.startTarget);
          }),
        );
      }
      case "abandon-switch":
        return this.resumed(step.intent, () =>
          this.locks.run(app, () => this.fallBack(step.intent, { ok: false, reason: step.reason })),
        );
      case "report": {
        const outcome = step.intent.outcome as SwitchOutcome;
        return this.resumed(step.intent, async () => {
          if (outcome.ok) return outcome.result;
          throw new SwitchFailed(
            isErrorCode(outcome.error.code) ? outcome.error.code : "GILD_HEALTH_FAILED",
            outcome.error.message,
            outcome.result,
            outcome.error.hint,
          );
        });
      }
    }
  }

  private resumed(intent: SwitchIntent, run: () => Promise<DeployResult>): ResumedSwitch {
    if (intent.commandId !== "") this.unsettled.set(intent.commandId, intent.app);
    return {
      commandId: intent.commandId,
      kind: intent.kind,
      app: intent.app,
      run: async () => {
        try {
          return { deploy: await run() };
        } finally {
          // A switch no command asked for has no journal entry to wait for.
          if (intent.commandId === "")
            await this.locks.run(intent.app, () => this.layout.removeIntent(intent.app));
        }
      },
    };
  }

  private async requireMeta(app: string, generation: number): Promise<GenerationMeta> {
    const meta = await this.layout.readMeta(app, generation);
    if (!meta)
      throw new GildError("GILD_STATE_CORRUPT", `${app} generation ${generation} has no meta on the pool`);
    return meta;
  }

  /**
   * The command's result is in the journal: forget the switch record it came from. Until then the
   * record stays, so an agent killed in between still answers the command with that result.
   */
  async settle(commandId: string): Promise<void> {
    const app = this.unsettled.get(commandId);
    if (app === undefined) return;
    this.unsettled.delete(commandId);
    await this.locks.run(app, async () => {
      const intent = await this.layout.readIntent(app);
      if (intent?.commandId === commandId) await this.layout.removeIntent(app);
    });
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

  /** Watch a running generation's health; with a verdict, from the streak its health gate saw. */
  private startMonitor(meta: GenerationMeta, verdict?: Verdict): void {
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
      this.deps.metrics?.healthChanged(meta.app, state.health);
      if (state.health === "healthy" && s.rollbackFailure?.generation === meta.generation) {
        // The generation the app went back to turned healthy after all: it serves again.
        s.rollbackFailure = null;
        this.layout
          .setRollbackFailure(meta.app, null)
          .catch((err: unknown) => this.log.warn({ app: meta.app, err }, "could not clear rollback-failed"));
      }
      this.deps.onChange();
    });
    s.monitor = monitor;
    monitor.start(verdict?.ok ? { healthyForMs: verdict.healthyForMs, detail: verdict.detail } : undefined);
    this.deps.metrics?.healthIs(meta.app, monitor.state.health);
    this.deps.onChange();
  }

  /** Wait until a started generation is healthy (its probe, or plain running without one), or why not. */
  private async waitHealthy(meta: GenerationMeta, deadlineAt: number): Promise<Verdict> {
    const isAlive = async () => {
      const st = await this.deps.driver.status(meta.app, meta.generation);
      return { running: st.running, exitCode: st.exitCode, signal: st.signal };
    };
    const probe = meta.health && probeOf(meta.health);
    if (!probe) {
      const began = performance.now();
      const until = Math.min(deadlineAt, Date.now() + RUNNING_IS_HEALTHY_MS);
      while (Date.now() < until) {
        const alive = await isAlive();
        if (!alive.running) {
          const tail = await tailFile(this.layout.logFile(meta.app, meta.generation), 20);
          return {
            ok: false,
            reason: `the container exited (code ${alive.exitCode ?? "unknown"}) right after start${tail ? `\nlast lines of its log:\n${tail}` : ""}`,
          };
        }
        await delay(100);
      }
      return { ok: true, healthyForMs: Math.round(performance.now() - began), detail: "running (no probe)" };
    }
    const verdict = await waitHealthy(probe, {
      deadlineAt,
      isAlive,
      exec: (argv, opts) => this.deps.driver.exec(meta.app, meta.generation, argv, opts),
      logFile: this.layout.logFile(meta.app, meta.generation),
    });
    return verdict.ok
      ? {
          ok: true,
          healthyForMs: Math.max(0, Date.now() - verdict.healthySince),
          detail: verdict.last.detail,
        }
      : { ok: false, reason: verdict.reason };
  }

  /** DeployApp: a new generation from an image version, switched to with a health gate and local rollback. */
  async deploy(command: DeployApp, commandId = ""): Promise<DeployResult> {
    const spec = command.spec;
    const app = spec.name;
    const version = command.imageVersion;
    const line = spec.imageLine;
    const code = spec.codeLine
      ? { line: spec.codeLine, version: command.codeVersion, mount: spec.codeMount }
      : null;
    return this.locks.run(app, async () => {
      const needed = [{ line, version }, ...(code ? [code] : [])];
      for (const { line: l, version: v } of needed) {
        if (!(await this.deps.store.exists(l, v))) {
          throw new GildError("GILD_IMAGE_NOT_FOUND", `${l}@${v} is not on this host`, {
            hint: "push it first: gild image push",
          });
        }
      }
      if (
        code &&
        (!code.mount.startsWith("/") || code.mount.split("/").some((p) => p === ".." || p === "."))
      ) {
        throw new GildError("GILD_INVALID_SPEC", `code mount ${code.mount} is not an absolute path`);
      }
      // The controller's fingerprint of what runs; the same spec and versions are already deployed when it matches.
      const specHash = command.specHash;
      const current = await this.layout.current(app);
      const currentMeta = current === null ? null : await this.layout.readMeta(app, current);
      if (
        currentMeta &&
        currentMeta.imageVersion === version &&
        (currentMeta.codeVersion ?? 0) === (code?.version ?? 0) &&
        currentMeta.specHash === specHash
      ) {
        const status = await this.deps.driver.status(app, current as number);
        if (status.running) {
          return {
            ...emptyDeployResult(app),
            generation: current as number,
            imageVersion: version,
            codeVersion: code?.version ?? 0,
            previousGeneration: (await this.layout.previous(app, current)) ?? 0,
            unchanged: true,
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
        ...(code ? { codeLine: code.line, codeVersion: code.version, codeMount: code.mount } : {}),
        specHash,
        command: [...spec.command],
        env: { ...spec.env },
        dataMount: spec.dataMount,
        port: spec.port,
        health: spec.health ? normalizeHealth(spec.health) : null,
        stopTimeoutMs: spec.stopTimeoutMs || APP_DEFAULTS.stopTimeoutMs,
        createdAt: Date.now(),
      };
      // A writable snapshot of the image: instant, and sharing every block with it.
      const root = this.layout.generationDir(app, generation);
      await snapshotSubvolume(this.deps.store.pool.rootfsPath(line, version), root, {
        launcher: this.deps.store.pool.launcher,
      });
      if (code)
        await this.placeCode(root, code).catch(async (err: unknown) => {
          await this.layout.removeGeneration(app, generation);
          throw err;
        });
      await this.writeAppConfig(meta);
      await this.layout.writeMeta(meta);
      return this.switchTo(meta, current, {
        commandId,
        kind: "deployApp",
        isNew: true,
        healthyDeadlineMs: command.healthyDeadlineMs || APP_DEFAULTS.healthyDeadlineMs,
      });
    });
  }

  /**
   * RollbackApp: back to the previous generation, already on the pool: no download. With
   * onlyFromImageVersion, an app not on that version is left as it is (a rollout's rollback may reach
   * a host that never switched, or that already went back on its own).
   */
  async rollback(command: RollbackApp, commandId = ""): Promise<DeployResult> {
    const app = command.name;
    return this.locks.run(app, async () => {
      const current = await this.layout.current(app);
      const currentMeta = current === null ? null : await this.layout.readMeta(app, current);
      // A rollout's rollback names the version of its line (image or code) it undoes.
      const onlyFrom =
        command.onlyFromCodeVersion > 0
          ? {
              what: `${currentMeta?.codeLine || "code"} version`,
              version: command.onlyFromCodeVersion,
              runs: currentMeta?.codeVersion,
            }
          : command.onlyFromImageVersion > 0
            ? { what: "version", version: command.onlyFromImageVersion, runs: currentMeta?.imageVersion }
            : null;
      if (onlyFrom && onlyFrom.runs !== onlyFrom.version) {
        this.log.info(
          { app, current, runs: onlyFrom.runs ?? null, onlyFrom: onlyFrom.version },
          "rollback not needed: the app is not on that version",
        );
        const deadlineMs = command.healthyDeadlineMs || APP_DEFAULTS.healthyDeadlineMs;
        return this.confirmServing(
          app,
          current,
          currentMeta,
          `${onlyFrom.what} ${onlyFrom.version}`,
          deadlineMs,
        );
      }
      const previous = await this.layout.previous(app, current);
      const meta = previous === null ? null : await this.layout.readMeta(app, previous);
      if (previous === null || !meta) {
        throw new GildError(
          "GILD_NO_PREVIOUS_GENERATION",
          `${app} has no previous generation on this host to roll back to`,
        );
      }
      return this.switchTo(meta, current, {
        commandId,
        kind: "rollbackApp",
        isNew: false,
        healthyDeadlineMs: command.healthyDeadlineMs || APP_DEFAULTS.healthyDeadlineMs,
      });
    });
  }

  /**
   * A rollback that has nothing to switch (the app is already off the version) still promises what a
   * rollback promises: the app serves. The generation that runs is held to its health gate, unless its
   * monitor has seen it healthy for minHealthy already; GILD_ROLLBACK_UNHEALTHY when it does not pass.
   */
  private async confirmServing(
    app: string,
    current: number | null,
    meta: GenerationMeta | null,
    onlyFrom: string,
    deadlineMs: number,
  ): Promise<DeployResult> {
    const result: DeployResult = {
      ...emptyDeployResult(app),
      generation: current ?? 0,
      imageVersion: meta?.imageVersion ?? 0,
      codeVersion: meta?.codeVersion ?? 0,
      previousGeneration: (await this.layout.previous(app, current)) ?? 0,
      unchanged: true,
      reason: `not on ${onlyFrom}: nothing to roll back`,
    };
    if (current === null || meta === null) return result;
    const monitor = this.appState(app).monitor;
    const minHealthyMs = meta.health?.minHealthyMs ?? 0;
    if (monitor && monitor.healthyForMs() >= minHealthyMs && monitor.state.health === "healthy")
      return result;
    const verdict = await this.waitHealthy(meta, Date.now() + deadlineMs);
    if (verdict.ok) return result;
    const unhealthy: DeployResult = { ...result, rollbackUnhealthy: true, rollbackReason: verdict.reason };
    throw new SwitchFailed(
      "GILD_ROLLBACK_UNHEALTHY",
      `${app} is not on ${onlyFrom} (it runs generation ${current}), and that generation does not pass its health gate: ${verdict.reason}`,
      unhealthy,
      `the app does not serve on this host; see its output: gild app logs ${app} --generation ${current}`,
    );
  }

  /**
   * The code version inside a new generation's root: a read-only snapshot of it, nested at the code
   * mount. The generation carries its code as it carries its root (a rollback needs neither version on
   * the pool), and nothing in the container can write to it. The mount point's parents are made; an
   * empty directory there in the image is replaced, anything else is refused.
   */
  private async placeCode(
    root: string,
    code: { line: string; version: number; mount: string },
  ): Promise<void> {
    const target = join(root, code.mount);
    await mkdir(dirname(target), { recursive: true });
    const existing = await lstat(target).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw err;
    });
    if (existing) {
      const empty = existing.isDirectory() && (await readdir(target)).length === 0;
      if (!empty)
        throw new GildError(
          "GILD_INVALID_SPEC",
          `the image has ${code.mount}, which is not an empty directory: the code cannot be mounted there`,
          { hint: "choose another --code-mount, or leave that path empty in the image" },
        );
      await rmdir(target);
    }
    await snapshotSubvolume(this.deps.store.pool.rootfsPath(code.line, code.version), target, {
      readOnly: true,
      launcher: this.deps.store.pool.launcher,
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
      code: meta.codeLine
        ? { version: `${meta.codeLine}@${meta.codeVersion ?? 0}`, mount: meta.codeMount }
        : null,
      env: meta.env,
      data: meta.dataMount || null,
      port: meta.port || null,
    };
    await writeFile(join(dir, "app.json"), `${JSON.stringify(config, null, 2)}\n`);
  }

  /** Record the switch (switch.json) before any container is touched, then run it. */
  private async switchTo(
    meta: GenerationMeta,
    from: number | null,
    options: Pick<SwitchIntent, "commandId" | "kind" | "isNew" | "healthyDeadlineMs">,
  ): Promise<DeployResult> {
    const intent: SwitchIntent = {
      ...options,
      app: meta.app,
      from: from === meta.generation ? null : from,
      to: meta.generation,
      startedAt: Date.now(),
      outcome: null,
    };
    await this.layout.writeIntent(intent);
    if (intent.commandId !== "") this.unsettled.set(intent.commandId, intent.app);
    try {
      return await this.runSwitch(intent, meta, true);
    } finally {
      if (intent.commandId === "") await this.layout.removeIntent(meta.app);
    }
  }

  /**
   * Stop the old generation, start the target (unless it already runs), and hold it to its health
   * gate; on failure go back (fallBack). The outcome is written into the switch record before it is
   * returned or thrown.
   */
  private async runSwitch(
    intent: SwitchIntent,
    meta: GenerationMeta,
    startTarget: boolean,
  ): Promise<DeployResult> {
    const app = meta.app;
    const s = this.appState(app);
    s.busy = true;
    clearTimeout(s.restartTimer);
    s.monitor?.stop();
    try {
      const from = intent.from;
      if (from !== null) {
        const fromMeta = await this.layout.readMeta(app, from);
        await this.deps.driver.stop(app, from, { timeoutMs: fromMeta?.stopTimeoutMs ?? meta.stopTimeoutMs });
      }
      let verdict: Verdict;
      try {
        if (startTarget) await this.deps.driver.start(this.containerSpec(meta));
        verdict = await this.waitHealthy(meta, Date.now() + intent.healthyDeadlineMs);
      } catch (err) {
        verdict = { ok: false, reason: `the container did not start: ${(err as Error).message}` };
      }
      if (!verdict.ok) return await this.fallBack(intent, verdict);
      await this.layout.setCurrent(app, meta.generation);
      s.generation = meta.generation;
      s.restarts = 0;
      s.startedAt = Date.now();
      await this.clearRollbackFailure(app);
      await this.prune(app, [meta.generation, ...(from === null ? [] : [from])]);
      this.startMonitor(meta, verdict);
      this.log.info({ app, generation: meta.generation, image: imageOf(meta), from }, "switched");
      const result: DeployResult = {
        ...emptyDeployResult(app),
        generation: meta.generation,
        imageVersion: meta.imageVersion,
        codeVersion: meta.codeVersion ?? 0,
        previousGeneration: from ?? 0,
      };
      await this.recordOutcome(intent, { ok: true, result });
      return result;
    } finally {
      s.busy = false;
      this.deps.onChange();
    }
  }

  /**
   * The target did not turn healthy: stop it, start the generation before it again and hold that one
   * to its own health gate (its probe, its minHealthy, a fresh deadline), then throw what happened:
   * GILD_HEALTH_FAILED when the old generation serves again, GILD_ROLLBACK_UNHEALTHY when it does not.
   */
  private async fallBack(intent: SwitchIntent, failed: { ok: false; reason: string }): Promise<never> {
    const app = intent.app;
    const s = this.appState(app);
    const target = await this.layout.readMeta(app, intent.to);
    const what = target ? `generation ${intent.to} (${imageOf(target)})` : `generation ${intent.to}`;
    this.log.warn({ app, generation: intent.to, reason: failed.reason }, "switch failed; going back");
    await this.deps.driver
      .stop(app, intent.to, { timeoutMs: target?.stopTimeoutMs ?? APP_DEFAULTS.stopTimeoutMs })
      .catch((err: unknown) =>
        this.log.error({ app, generation: intent.to, err }, "could not stop the failed generation"),
      );
    const from = intent.from;
    const fromMeta = from === null ? null : await this.layout.readMeta(app, from);
    let restored: Verdict | null = null;
    if (from !== null && fromMeta) {
      try {
        // It may run already: an abandoned switch's plan started it.
        if (!(await this.deps.driver.status(app, from)).running)
          await this.deps.driver.start(this.containerSpec(fromMeta));
        s.generation = from;
        s.startedAt = Date.now();
        restored = await this.waitHealthy(fromMeta, Date.now() + intent.healthyDeadlineMs);
      } catch (err) {
        restored = { ok: false, reason: `the container did not start: ${(err as Error).message}` };
      }
      this.startMonitor(fromMeta, restored);
    }
    if (intent.isNew) await this.layout.removeGeneration(app, intent.to);
    const unhealthy = restored !== null && !restored.ok;
    const result: DeployResult = {
      ...emptyDeployResult(app),
      generation: from ?? 0,
      imageVersion: fromMeta?.imageVersion ?? 0,
      codeVersion: fromMeta?.codeVersion ?? 0,
      rolledBack: restored !== null,
      reason: failed.reason,
      previousGeneration: intent.to,
      rollbackUnhealthy: unhealthy,
      rollbackReason: restored && !restored.ok ? restored.reason : "",
    };
    let error: SwitchFailed;
    if (restored === null) {
      error = new SwitchFailed(
        "GILD_HEALTH_FAILED",
        `${app} ${what} did not turn healthy: ${failed.reason}`,
        result,
        `see its output: gild app logs ${app} --generation ${intent.to}`,
      );
    } else if (restored.ok) {
      await this.clearRollbackFailure(app);
      error = new SwitchFailed(
        "GILD_HEALTH_FAILED",
        `${app} ${what} did not turn healthy: ${failed.reason}; generation ${from} runs again and is healthy`,
        result,
        `see its output: gild app logs ${app} --generation ${intent.to}`,
      );
    } else {
      const failure: RollbackFailure = {
        generation: from as number,
        reason: restored.reason,
        at: Date.now(),
      };
      s.rollbackFailure = failure;
      await this.layout.setRollbackFailure(app, failure);
      this.log.error(
        { app, generation: from, reason: restored.reason },
        "the generation gone back to is not healthy",
      );
      error = new SwitchFailed(
        "GILD_ROLLBACK_UNHEALTHY",
        `${app} ${what} did not turn healthy: ${failed.reason}; went back to generation ${from}, which did not turn healthy either: ${restored.reason}`,
        result,
        `the app does not serve on this host; see its output: gild app logs ${app} --generation ${from}`,
      );
    }
    await this.recordOutcome(intent, {
      ok: false,
      result,
      error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) },
    });
    throw error;
  }

  private async recordOutcome(intent: SwitchIntent, outcome: SwitchOutcome): Promise<void> {
    intent.outcome = outcome;
    await this.layout.writeIntent(intent);
  }

  private async clearRollbackFailure(app: string): Promise<void> {
    const s = this.appState(app);
    if (s.rollbackFailure === null) return;
    s.rollbackFailure = null;
    await this.layout.setRollbackFailure(app, null);
  }

  /** Keep the last two generations; remove the rest (snapshots and meta, logs stay). */
  private async prune(app: string, keep: number[]): Promise<void> {
    for (const generation of await this.layout.generations(app)) {
      if (keep.includes(generation)) continue;
      await this.deps.driver.stop(app, generation);
      await this.layout.removeGeneration(app, generation);
    }
  }

  /**
   * Before a host reboot: stop every app's containers cleanly (each generation its own stop timeout),
   * waiting for a switch in progress to end first (its lock), and restart none of them after.
   */
  async stopAll(): Promise<void> {
    const running = await this.deps.driver.list();
    for (const app of await this.layout.apps()) {
      await this.locks.run(app, async () => {
        const s = this.appState(app);
        s.monitor?.stop();
        s.monitor = undefined;
        clearTimeout(s.restartTimer);
        s.busy = true;
        for (const c of running.filter((r) => r.app === app)) {
          const meta = await this.layout.readMeta(app, c.generation);
          this.log.info({ app, generation: c.generation }, "stopping for a host reboot");
          await this.deps.driver.stop(app, c.generation, {
            timeoutMs: meta?.stopTimeoutMs ?? APP_DEFAULTS.stopTimeoutMs,
          });
        }
      });
    }
    this.deps.onChange();
  }

  /** After stopAll, when the reboot did not happen: every app runs again, as at start. */
  async restartAll(): Promise<void> {
    for (const s of this.state.values()) s.busy = false;
    await this.reconcile();
    this.deps.onChange();
  }

  /** RemoveApp: stop its containers, remove its generations, and its data when asked to. */
  async remove(command: RemoveApp): Promise<void> {
    const app = command.name;
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
      this.deps.metrics?.appRemoved(app);
      this.deps.onChange();
    });
  }

  /** ReadLogs: a chunk of a generation's container output, from an offset or the last bytes. */
  async readLogs(command: ReadLogs): Promise<LogChunk> {
    const app = command.name;
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
    const from =
      "tailBytes" in command.from
        ? Math.max(0, size - command.from.tailBytes)
        : Math.min(command.from.offset, size);
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
      let health: AppHealth;
      let detail: string;
      let since: number;
      let healthyForMs = 0;
      if (s.monitor && status.running) {
        health = s.monitor.state.health;
        detail = s.monitor.state.detail;
        since = s.monitor.state.since ?? 0;
        healthyForMs = s.monitor.healthyForMs();
      } else {
        health = status.running ? (meta.health ? "unknown" : "healthy") : "unhealthy";
        detail = status.running ? (meta.health ? "not probed yet" : "running (no probe)") : "not running";
        since = status.running ? (status.startedAt ?? 0) : 0;
        if (health === "healthy" && since > 0) healthyForMs = Math.max(0, Date.now() - since);
      }
      const failedBack = s.rollbackFailure !== null && s.rollbackFailure.generation === current;
      if (failedBack && health !== "healthy") detail = `rollback failed: ${s.rollbackFailure?.reason ?? ""}`;
      out.push({
        name: app,
        generation: current,
        imageLine: meta.imageLine,
        imageVersion: meta.imageVersion,
        state: s.busy
          ? "switching"
          : failedBack && health !== "healthy"
            ? "rollback-failed"
            : status.running
              ? "running"
              : "stopped",
        health,
        healthDetail: clipDetail(detail),
        healthSinceMs: since,
        healthyForMs,
        previousGeneration: previous ?? 0,
        previousImageVersion: previousMeta?.imageVersion ?? 0,
        generations: await this.layout.generations(app),
        specHash: meta.specHash,
        codeLine: meta.codeLine ?? "",
        codeVersion: meta.codeVersion ?? 0,
        previousCodeVersion: previousMeta?.codeVersion ?? 0,
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
          this.deps.metrics?.restarted(app);
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
function normalizeHealth(h: HealthSpec): HealthSpec {
  const d = APP_DEFAULTS.health;
  // 0 on the wire is "not given" for the two that cannot be 0.
  const health: HealthSpec = {
    ...h,
    command: [...h.command],
    intervalMs: h.intervalMs || d.intervalMs,
    timeoutMs: h.timeoutMs || d.timeoutMs,
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
