import { mkdir, open, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GildError, spawnFailure } from "@gild/core";
import { execa } from "execa";
import { DriverBase } from "./driver-base.js";
import { machineName } from "./machine-name.js";
import { buildNspawnArgs } from "./nspawn-args.js";
import { checkNspawnIdentity } from "./nspawn-identity.js";
import {
  ensureRunDir,
  listPidFiles,
  type PidRecord,
  pidFilePath,
  readPidFile,
  removePidFile,
  writePidFile,
} from "./pid-file.js";
import { checkHostPaths } from "./preflight.js";
import { findContainerInit, isProcessAlive, readProcStat, signalProcess } from "./proc.js";
import { assertContainerId, validateContainerSpec } from "./spec.js";
import { tailFile } from "./tail-file.js";
import { absentStatus, containerKey, type ExitInfo, TrackedContainer } from "./tracked-container.js";
import type {
  ContainerSpec,
  ContainerStatus,
  RuntimeDriver,
  RuntimeDriverOptions,
  StopResult,
} from "./types.js";

// How often start() looks for the container's init, and stop() for the end of an adopted container.
const POLL_MS = 10;
// After SIGKILL to the container's init, nspawn normally exits within tens of ms (measured ~25 ms).
const KILL_GRACE_MS = 3_000;

/**
 * Runs each container as a detached systemd-nspawn child: its own session, output appended to the
 * log file through an inherited fd (no pipe back to the agent), unref'd. So a container outlives the
 * agent, and a pid file per container in runDir lets the next agent adopt() it.
 */
export class ProcessDriver extends DriverBase implements RuntimeDriver {
  readonly kind = "process" as const;
  private readonly containers = new Map<string, TrackedContainer>();
  private readonly starting = new Set<string>();

  constructor(options: RuntimeDriverOptions) {
    super(options, "process", "adopted containers");
  }

  async start(spec: ContainerSpec): Promise<ContainerStatus> {
    validateContainerSpec(spec);
    const key = containerKey(spec.app, spec.generation);
    if (this.starting.has(key)) {
      throw new GildError("GILD_CONFLICT", `${spec.app} generation ${spec.generation} is already starting`);
    }
    this.starting.add(key);
    try {
      const existing = await this.find(spec.app, spec.generation);
      if (existing && existing.exit === null) {
        throw new GildError("GILD_CONFLICT", `${spec.app} generation ${spec.generation} is already running`, {
          hint: "stop it first",
        });
      }
      await checkHostPaths(spec);
      const tracked = await this.spawn(spec);
      await this.waitForInit(tracked, spec);
      return tracked.status();
    } finally {
      this.starting.delete(key);
    }
  }

  private async spawn(spec: ContainerSpec): Promise<TrackedContainer> {
    const machine = machineName(spec.app, spec.generation, this.runDir);
    await ensureRunDir(this.runDir);
    await mkdir(dirname(spec.logFile), { recursive: true });
    const logHandle = await open(spec.logFile, "a", 0o640);
    let tracked: TrackedContainer | undefined;
    let early: ExitInfo | undefined;
    let subprocess: ReturnType<typeof execa>;
    // execa hands a file descriptor number straight to spawn(), so nspawn inherits the log file itself;
    // its types only list the standard fds, hence the cast.
    const logFd = logHandle.fd as 1;
    try {
      subprocess = execa("systemd-nspawn", buildNspawnArgs(spec, machine), {
        // Own session and process group: signals to the agent's group never reach it.
        detached: true,
        cleanup: false,
        stdin: "ignore",
        stdout: logFd,
        stderr: logFd,
        buffer: false,
        reject: false,
      });
      // Listen before anything else is awaited, so no exit can be missed.
      subprocess.on("exit", (code, signal) => {
        const info = { code, signal };
        if (tracked) this.handleExit(tracked, info);
        else early = info;
      });
      await new Promise<void>((resolveSpawn, rejectSpawn) => {
        subprocess.once("spawn", resolveSpawn);
        subprocess.once("error", rejectSpawn);
      });
    } catch (err) {
      throw (
        spawnFailure("systemd-nspawn", err) ??
        new GildError("GILD_CONTAINER_START_FAILED", `systemd-nspawn did not start: ${String(err)}`, {
          cause: err,
        })
      );
    } finally {
      await logHandle.close();
    }
    // The agent must not wait for the container: it is meant to outlive the agent.
    subprocess.unref();
    const pid = subprocess.pid as number;
    const stat = await readProcStat(pid);
    const record: PidRecord = {
      pid,
      startTime: stat?.startTime ?? "0",
      machine,
      app: spec.app,
      generation: spec.generation,
      rootfs: spec.rootfs,
      logFile: spec.logFile,
      stopTimeoutMs: spec.stopTimeoutMs,
      startedAt: Date.now(),
    };
    tracked = new TrackedContainer(record, true);
    this.containers.set(containerKey(spec.app, spec.generation), tracked);
    this.log.info({ app: spec.app, generation: spec.generation, pid, machine }, "container started");
    await writePidFile(this.runDir, record);
    if (early) this.handleExit(tracked, early);
    // An exit while the file was being written may have removed it before it was renamed into place.
    if (tracked.exit) await removePidFile(this.runDir, machine);
    return tracked;
  }

  /** Until the container's init runs, or nspawn has ended (the status then says how). */
  private async waitForInit(tracked: TrackedContainer, spec: ContainerSpec): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    while (tracked.exit === null) {
      if ((await findContainerInit(tracked.record.pid)) !== null) return;
      if (Date.now() >= deadline) {
        await this.stop(spec.app, spec.generation, { timeoutMs: 1_000 });
        const tail = await tailFile(spec.logFile, 20);
        throw new GildError(
          "GILD_CONTAINER_START_FAILED",
          `systemd-nspawn did not bring up ${spec.app} generation ${spec.generation} within ${this.startTimeoutMs} ms${tail ? `; log:\n${tail}` : ""}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  private handleExit(tracked: TrackedContainer, info: ExitInfo): void {
    if (!tracked.markExited(info)) return;
    const { app, generation, machine } = tracked.record;
    this.log.info({ app, generation, exitCode: info.code, signal: info.signal }, "container ended");
    if (tracked.stopping) return;
    removePidFile(this.runDir, machine).catch((err: unknown) =>
      this.log.warn({ err, machine }, "could not remove the pid file of an ended container"),
    );
    this.exits.emit(tracked.status());
  }

  /** The tracked container for (app, generation), or one a pid file names that really is it. */
  private async find(app: string, generation: number): Promise<TrackedContainer | undefined> {
    const tracked = this.containers.get(containerKey(app, generation));
    if (tracked) return tracked;
    const path = pidFilePath(this.runDir, machineName(app, generation, this.runDir));
    return this.adoptFile(path);
  }

  /** Adopt the container a pid file names, or remove the file when it does not name a live container. */
  private async adoptFile(path: string): Promise<TrackedContainer | undefined> {
    const record = await readPidFile(path);
    if (record === null) return undefined;
    if (record === "invalid") {
      this.log.warn({ path }, "removing a malformed pid file");
      await rm(path, { force: true });
      return undefined;
    }
    const key = containerKey(record.app, record.generation);
    const known = this.containers.get(key);
    if (known && known.record.pid === record.pid && known.record.startTime === record.startTime) return known;
    const refused = await checkNspawnIdentity(record, this.runDir);
    if (refused !== undefined) {
      this.log.info({ path, reason: refused }, "removing a stale pid file");
      await removePidFile(this.runDir, record.machine);
      return undefined;
    }
    const tracked = new TrackedContainer(record, false);
    this.containers.set(key, tracked);
    this.log.info({ app: record.app, generation: record.generation, pid: record.pid }, "container adopted");
    this.exits.ensure();
    return tracked;
  }

  /**
   * Whether an adopted container's nspawn still runs; its end is recorded (and reported) the first
   * time it is seen gone. Adopted containers are not this process's children: no 'exit' event.
   */
  private async stillRunning(tracked: TrackedContainer): Promise<boolean> {
    if (tracked.exit !== null) return false;
    if (await isProcessAlive(tracked.record.pid, tracked.record.startTime)) return true;
    this.handleExit(tracked, { code: null, signal: null });
    return false;
  }

  /** Poll /proc for the end of adopted containers. */
  protected async checkEnds(): Promise<boolean> {
    let live = 0;
    for (const tracked of this.containers.values()) {
      if (!tracked.own && (await this.stillRunning(tracked))) live++;
    }
    return live > 0;
  }

  /** Wait up to `ms` for the container's nspawn to end; true when it did. */
  private async waitExit(tracked: TrackedContainer, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    if (tracked.own) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolveTimeout) => {
        timer = setTimeout(resolveTimeout, Math.max(0, ms));
      });
      await Promise.race([tracked.exited, timeout]);
      clearTimeout(timer);
      return tracked.exit !== null;
    }
    for (;;) {
      if (!(await this.stillRunning(tracked))) return true;
      if (Date.now() >= deadline) return false;
      await sleep(POLL_MS);
    }
  }

  async stop(app: string, generation: number, opts: { timeoutMs?: number } = {}): Promise<StopResult> {
    assertContainerId(app, generation);
    const tracked = await this.find(app, generation);
    if (!tracked) return { graceful: true, exitCode: null };
    if (tracked.stopping) return tracked.stopping;
    if (tracked.exit !== null) {
      await removePidFile(this.runDir, tracked.record.machine);
      return { graceful: true, exitCode: tracked.exit.code };
    }
    tracked.stopping = this.terminate(tracked, opts.timeoutMs ?? tracked.record.stopTimeoutMs);
    return tracked.stopping;
  }

  /**
   * SIGTERM to nspawn (forwarded to the container's init by --kill-signal=SIGTERM); after the timeout,
   * SIGKILL to the container's init (the kernel then ends every process in its pid namespace) and,
   * should nspawn linger, to nspawn.
   */
  private async terminate(tracked: TrackedContainer, timeoutMs: number): Promise<StopResult> {
    const { pid, app, generation, machine } = tracked.record;
    const log = this.log.child({ app, generation, pid });
    // Found before anything is signalled: once nspawn is gone, it could no longer be found.
    const init = await findContainerInit(pid, { anyStage: true });
    const initStart = init === null ? null : ((await readProcStat(init))?.startTime ?? null);
    log.info({ timeoutMs }, "stopping container");
    if (tracked.exit === null) signalProcess(pid, "SIGTERM");
    let graceful = await this.waitExit(tracked, timeoutMs);
    if (!graceful) {
      log.warn({ timeoutMs }, "container ignored SIGTERM; killing it");
      const current = (await findContainerInit(pid, { anyStage: true })) ?? init;
      if (current !== null) signalProcess(current, "SIGKILL");
      if (!(await this.waitExit(tracked, KILL_GRACE_MS))) {
        if (await isProcessAlive(pid, tracked.record.startTime)) signalProcess(pid, "SIGKILL");
        if (!(await this.waitExit(tracked, KILL_GRACE_MS))) {
          tracked.stopping = null;
          throw new GildError("GILD_TIMEOUT", `systemd-nspawn ${pid} of ${app} did not end after SIGKILL`);
        }
      }
    }
    // nspawn ended, but its init could outlive it if nspawn itself was killed by someone.
    if (init !== null && initStart !== null && (await isProcessAlive(init, initStart))) {
      signalProcess(init, "SIGKILL");
      graceful = false;
      const deadline = Date.now() + KILL_GRACE_MS;
      while (await isProcessAlive(init, initStart)) {
        if (Date.now() >= deadline) {
          throw new GildError("GILD_TIMEOUT", `the init (pid ${init}) of ${app} did not end after SIGKILL`);
        }
        await sleep(POLL_MS);
      }
    }
    await removePidFile(this.runDir, machine);
    const result = { graceful, exitCode: graceful ? (tracked.exit?.code ?? null) : null };
    log.info(result, "container stopped");
    return result;
  }

  async status(app: string, generation: number): Promise<ContainerStatus> {
    assertContainerId(app, generation);
    const tracked = await this.find(app, generation);
    if (!tracked) return absentStatus(app, generation);
    if (!tracked.own && tracked.stopping === null) await this.stillRunning(tracked);
    return tracked.status();
  }

  async list(): Promise<ContainerStatus[]> {
    await this.adopt();
    const out: ContainerStatus[] = [];
    for (const tracked of this.containers.values()) {
      out.push(await this.status(tracked.record.app, tracked.record.generation));
    }
    return out.sort((a, b) => a.app.localeCompare(b.app) || a.generation - b.generation);
  }

  async adopt(): Promise<ContainerStatus[]> {
    const out: ContainerStatus[] = [];
    for (const path of await listPidFiles(this.runDir)) {
      const tracked = await this.adoptFile(path);
      if (tracked && tracked.exit === null) out.push(tracked.status());
    }
    return out;
  }

  protected async nspawnPid(app: string, generation: number): Promise<number | null> {
    const tracked = await this.find(app, generation);
    return tracked && tracked.exit === null ? tracked.record.pid : null;
  }
}
