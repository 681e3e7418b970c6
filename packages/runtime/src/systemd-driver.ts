import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GildError, isGildError } from "@gild/core";
import { DriverBase } from "./driver-base.js";
import { runHost } from "./host-exec.js";
import { machineName } from "./machine-name.js";
import { checkHostPaths } from "./preflight.js";
import { findContainerInit, isProcessAlive, readProcStat, signalProcess } from "./proc.js";
import { assertContainerId, validateContainerSpec } from "./spec.js";
import {
  buildSystemdRunArgs,
  isUnitActive,
  KILL_GRACE_MS,
  parseListUnits,
  parseSystemctlShow,
  SHOW_PROPERTIES,
  UNIT_GLOB,
  type UnitState,
  unitName,
  unitStatus,
} from "./systemd-units.js";
import { tailFile } from "./tail-file.js";
import { absentStatus, containerKey } from "./tracked-container.js";
import type {
  ContainerSpec,
  ContainerStatus,
  RuntimeDriver,
  RuntimeDriverOptions,
  StopResult,
} from "./types.js";

const STOP_POLL_MS = 100;
// systemd's own default, for a unit whose stop timeout cannot be read.
const DEFAULT_STOP_TIMEOUT_MS = 90_000;
// Results of units that failed this way are the container's own end, not a failure to start it.
const ENDED_RESULTS = new Set(["exit-code", "signal", "core-dump"]);

/** What the driver knows of one unit: started or adopted by it, or found ended. */
interface UnitRecord {
  app: string;
  generation: number;
  /** Seen running by this driver: once such a unit is gone, it ended with success (exit code 0). */
  seenRunning: boolean;
  /** When its main process started, as last seen. */
  startedAt: number | null;
  /** Set while (and after) stop() runs: that end is expected and not reported to onExit listeners. */
  stopping: Promise<StopResult> | null;
  /** How it ended, once read: systemd forgets it at reset-failed, the driver does not. */
  ended: ContainerStatus | null;
}

/** Both clocks now: systemd reports start times on CLOCK_MONOTONIC, which is what hrtime reads on Linux. */
function clocksNow(): { realMs: number; monotonicUs: number } {
  return { realMs: Date.now(), monotonicUs: Number(process.hrtime.bigint() / 1000n) };
}

/**
 * Runs each container as a transient systemd service (`systemd-run ... -- systemd-nspawn ...`), for
 * hosts where systemd is PID 1: systemd supervises the container, so it survives agent restarts, and
 * systemd ends it at the stop timeout even with no agent running. The units are named
 * gild-app-<app>-<generation>. A failed unit stays loaded until the driver has read how it ended
 * (status(), stop(), the exit watch, list() or adopt()), which then resets it.
 */
export class SystemdDriver extends DriverBase implements RuntimeDriver {
  readonly kind = "systemd" as const;
  private readonly records = new Map<string, UnitRecord>();

  constructor(options: RuntimeDriverOptions) {
    super(options, "systemd", "units");
  }

  private async show(app: string, generation: number): Promise<UnitState> {
    const { stdout } = await runHost("systemctl", [
      "show",
      `--property=${SHOW_PROPERTIES.join(",")}`,
      unitName(app, generation),
    ]);
    return parseSystemctlShow(stdout);
  }

  /** Let systemd unload a failed unit (it keeps them until told): its name is free again. */
  private async resetFailed(app: string, generation: number): Promise<void> {
    const unit = unitName(app, generation);
    try {
      // 1 and 5: the unit is not (or no longer) loaded.
      await runHost("systemctl", ["reset-failed", unit], { allowExit: [1, 5] });
    } catch (err) {
      // The result is read and kept already; start() resets the unit again before it reuses the name.
      this.log.warn({ err, unit }, "could not reset a failed unit");
    }
  }

  async start(spec: ContainerSpec): Promise<ContainerStatus> {
    validateContainerSpec(spec);
    const { app, generation } = spec;
    const unit = unitName(app, generation);
    const before = await this.show(app, generation);
    if (isUnitActive(before)) {
      throw new GildError("GILD_CONFLICT", `${unit} is already running`, { hint: "stop it first" });
    }
    // An earlier run of this name: read how it ended (unless already read) and free the name, which a
    // failed unit nobody read (its agent was gone) would block.
    await this.settle(app, generation, before);
    await checkHostPaths(spec);
    await mkdir(dirname(spec.logFile), { recursive: true });
    const machine = machineName(app, generation, this.runDir);
    try {
      await runHost(
        "systemd-run",
        buildSystemdRunArgs(spec, machine, { startTimeoutMs: this.startTimeoutMs }),
        {
          failureCode: "GILD_CONTAINER_START_FAILED",
          timeoutMs: this.startTimeoutMs + 10_000,
        },
      );
    } catch (err) {
      if (!isGildError(err, "GILD_CONTAINER_START_FAILED")) throw err;
      // The container may have ended before nspawn reported it ready: that is how it ended, as with
      // the process driver, and not a failure to start it.
      const after = await this.show(app, generation);
      if (!isUnitActive(after) && after.loaded && ENDED_RESULTS.has(after.result)) {
        this.watch(app, generation);
        return this.settle(app, generation, after);
      }
      // Frees the name of a unit that failed to start.
      if (!isUnitActive(after)) await this.settle(app, generation, after);
      const tail = await tailFile(spec.logFile, 20);
      throw new GildError("GILD_CONTAINER_START_FAILED", `${err.message}${tail ? `\nlog:\n${tail}` : ""}`, {
        cause: err,
      });
    }
    this.log.info({ app, generation, unit }, "container started");
    this.watch(app, generation);
    return this.observe(app, generation);
  }

  /** Watch a unit seen running (a fresh record: an earlier run of the name is over). */
  private watch(app: string, generation: number): UnitRecord {
    const key = containerKey(app, generation);
    let record = this.records.get(key);
    if (!record || record.ended !== null) {
      record = { app, generation, seenRunning: true, startedAt: null, stopping: null, ended: null };
      this.records.set(key, record);
    }
    this.exits.ensure();
    return record;
  }

  /** The unit's status now; one found ended is settled. */
  private async observe(app: string, generation: number): Promise<ContainerStatus> {
    const state = await this.show(app, generation);
    if (!isUnitActive(state)) return this.settle(app, generation, state);
    const status = unitStatus(app, generation, state, clocksNow());
    const record = this.records.get(containerKey(app, generation));
    if (record && record.ended === null) record.startedAt = status.startedAt;
    return status;
  }

  /**
   * How a unit that is no longer active ended, read once and kept, then reported to onExit listeners
   * (unless stop() ended it) and reset. systemd keeps a failed unit, with its exit code, until
   * reset-failed, and unloads one that succeeded by itself: a unit this driver saw running that is gone
   * exited 0. (One that someone else reset between two looks would read as exit 0 too.)
   */
  private async settle(app: string, generation: number, state: UnitState): Promise<ContainerStatus> {
    const status = this.recordEnd(app, generation, state);
    if (state.loaded) await this.resetFailed(app, generation);
    return status;
  }

  /** Synchronous, so that a concurrent look neither reads nor reports the same end again. */
  private recordEnd(app: string, generation: number, state: UnitState): ContainerStatus {
    const key = containerKey(app, generation);
    const record = this.records.get(key);
    if (record?.ended) return record.ended;
    let status: ContainerStatus;
    if (state.loaded) status = unitStatus(app, generation, state, clocksNow());
    else if (record?.seenRunning) {
      status = { ...absentStatus(app, generation), startedAt: record.startedAt, exitCode: 0 };
    } else return absentStatus(app, generation);
    if (!record) {
      this.records.set(key, {
        app,
        generation,
        seenRunning: false,
        startedAt: null,
        stopping: null,
        ended: status,
      });
      return status;
    }
    record.ended = status;
    if (record.seenRunning && !record.stopping) {
      this.log.info(
        { app, generation, exitCode: status.exitCode, signal: status.signal, result: state.result },
        "container ended",
      );
      this.exits.emit(status);
    }
    return status;
  }

  /** Report units that ended on their own; systemd supervises, the driver only observes. */
  protected async checkEnds(): Promise<boolean> {
    let watching = 0;
    for (const record of [...this.records.values()]) {
      if (record.ended !== null) continue;
      watching++;
      if (!record.stopping) await this.observe(record.app, record.generation);
    }
    return watching > 0;
  }

  async stop(app: string, generation: number, opts: { timeoutMs?: number } = {}): Promise<StopResult> {
    assertContainerId(app, generation);
    const known = this.records.get(containerKey(app, generation));
    if (known?.stopping) return known.stopping;
    if (known?.ended) return { graceful: true, exitCode: known.ended.exitCode };
    const state = await this.show(app, generation);
    if (!isUnitActive(state)) {
      const ended = await this.settle(app, generation, state);
      return { graceful: true, exitCode: ended.exitCode };
    }
    const record = this.watch(app, generation);
    const stopping = this.terminate(
      record,
      state,
      opts.timeoutMs ?? state.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
    );
    record.stopping = stopping;
    // Kept once done, as the process driver does: a second stop() says the same.
    stopping.catch(() => {
      if (record.stopping === stopping) record.stopping = null;
    });
    return stopping;
  }

  /**
   * `systemctl stop` without blocking (systemd sends SIGTERM to nspawn, which forwards it to the
   * container's init), then watch the unit. When `timeoutMs` passes first, the container's init gets
   * SIGKILL from here, as with the process driver (the kernel ends its pid namespace, nspawn exits 1);
   * should the unit still not end, every process of it gets SIGKILL. systemd does the same at its own
   * stop timeout; this honours a shorter one.
   */
  private async terminate(record: UnitRecord, running: UnitState, timeoutMs: number): Promise<StopResult> {
    const { app, generation } = record;
    const unit = unitName(app, generation);
    // Found before anything is signalled: once nspawn is gone, it could no longer be found.
    const init = running.mainPid === null ? null : await findContainerInit(running.mainPid);
    const initStart = init === null ? null : ((await readProcStat(init))?.startTime ?? null);
    this.log.info({ app, generation, timeoutMs }, "stopping container");
    await runHost("systemctl", ["stop", "--no-block", unit]);
    let stage: "sigterm" | "init-killed" | "all-killed" = "sigterm";
    let deadline = Date.now() + timeoutMs;
    let state: UnitState;
    for (;;) {
      state = await this.show(app, generation);
      if (!isUnitActive(state)) break;
      if (Date.now() >= deadline) {
        if (stage === "all-killed") throw new GildError("GILD_TIMEOUT", `${unit} did not end after SIGKILL`);
        if (stage === "sigterm" && init !== null && (await isProcessAlive(init, initStart ?? undefined))) {
          this.log.warn({ app, generation, timeoutMs }, "container ignored SIGTERM; killing it");
          signalProcess(init, "SIGKILL");
          stage = "init-killed";
        } else {
          this.log.warn({ app, generation }, "killing every process of the unit");
          // --kill-who (not --kill-whom) is understood by systemd 249 and by later versions alike.
          await runHost("systemctl", ["kill", "--kill-who=all", "--signal=SIGKILL", unit], {
            allowExit: [1, 5],
          });
          stage = "all-killed";
        }
        deadline = Date.now() + KILL_GRACE_MS;
      }
      await sleep(STOP_POLL_MS);
    }
    const ended = await this.settle(app, generation, state);
    // systemd's own stop timeout (Result=timeout) may have come first: a kill all the same.
    const graceful = stage === "sigterm" && state.result !== "timeout" && ended.signal !== "SIGKILL";
    const result = { graceful, exitCode: graceful ? ended.exitCode : null };
    this.log.info({ app, generation, ...result }, "container stopped");
    return result;
  }

  async status(app: string, generation: number): Promise<ContainerStatus> {
    assertContainerId(app, generation);
    const record = this.records.get(containerKey(app, generation));
    return record?.ended ?? this.observe(app, generation);
  }

  private async units(): Promise<Array<{ app: string; generation: number }>> {
    const { stdout } = await runHost("systemctl", [
      "list-units",
      "--all",
      "--plain",
      "--no-legend",
      "--full",
      UNIT_GLOB,
    ]);
    return parseListUnits(stdout);
  }

  async list(): Promise<ContainerStatus[]> {
    const out = new Map<string, ContainerStatus>();
    for (const { app, generation } of await this.units()) {
      out.set(containerKey(app, generation), await this.status(app, generation));
    }
    for (const [key, record] of this.records) {
      if (!out.has(key)) out.set(key, await this.status(record.app, record.generation));
    }
    return [...out.values()].sort((a, b) => a.app.localeCompare(b.app) || a.generation - b.generation);
  }

  /** Re-attach to running units; those that ended while nobody watched are read and reset. */
  async adopt(): Promise<ContainerStatus[]> {
    const out: ContainerStatus[] = [];
    for (const { app, generation } of await this.units()) {
      const status = await this.status(app, generation);
      if (!status.running) continue;
      this.watch(app, generation).startedAt = status.startedAt;
      out.push(status);
    }
    return out;
  }

  protected async nspawnPid(app: string, generation: number): Promise<number | null> {
    const state = await this.show(app, generation);
    return isUnitActive(state) ? state.mainPid : null;
  }
}
