import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GildError, isGildError, type Logger, silentLogger } from "@gild/core";
import { execInContainer } from "./container-exec.js";
import { DEFAULT_START_TIMEOUT_MS, DEFAULT_WATCH_INTERVAL_MS, ExitWatch } from "./exit-watch.js";
import { runHost } from "./host-exec.js";
import { machineName } from "./machine-name.js";
import { checkHostPaths } from "./preflight.js";
import { findContainerInit } from "./proc.js";
import { assertContainerId, validateContainerSpec } from "./spec.js";
import {
  buildSystemdRunArgs,
  isUnitActive,
  parseListUnits,
  parseSystemctlShow,
  SHOW_PROPERTIES,
  UNIT_GLOB,
  type UnitState,
  unitName,
  unitStatus,
} from "./systemd-units.js";
import { tailFile } from "./tail-file.js";
import { containerKey } from "./tracked-container.js";
import type {
  ContainerSpec,
  ContainerStatus,
  ExecResult,
  RuntimeDriver,
  RuntimeDriverOptions,
  StopResult,
} from "./types.js";

const STOP_POLL_MS = 100;
const KILL_GRACE_MS = 5_000;
// systemd's own default, for a unit whose stop timeout cannot be read.
const DEFAULT_STOP_TIMEOUT_MS = 90_000;

interface Known {
  app: string;
  generation: number;
  stopping: Promise<StopResult> | null;
}

/** Both clocks now: systemd reports start times on CLOCK_MONOTONIC, which is what hrtime reads on Linux. */
function clocksNow(): { realMs: number; monotonicUs: number } {
  return { realMs: Date.now(), monotonicUs: Number(process.hrtime.bigint() / 1000n) };
}

/**
 * Runs each container as a transient systemd service (`systemd-run ... -- systemd-nspawn ...`), for
 * hosts where systemd is PID 1: systemd supervises the container, so it survives agent restarts, and
 * the stop timeout and final SIGKILL are systemd's. The units are named gild-app-<app>-<generation>.
 */
export class SystemdDriver implements RuntimeDriver {
  readonly kind = "systemd" as const;
  private readonly runDir: string;
  private readonly log: Logger;
  private readonly startTimeoutMs: number;
  private readonly known = new Map<string, Known>();
  private readonly exits: ExitWatch;

  constructor(options: RuntimeDriverOptions) {
    this.runDir = resolve(options.runDir);
    this.log = (options.log ?? silentLogger).child({ component: "runtime", driver: "systemd" });
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.exits = new ExitWatch({
      intervalMs: options.watchIntervalMs ?? DEFAULT_WATCH_INTERVAL_MS,
      check: () => this.checkUnits(),
      log: this.log,
      what: "units",
    });
  }

  private async show(app: string, generation: number): Promise<UnitState> {
    const { stdout } = await runHost("systemctl", [
      "show",
      `--property=${SHOW_PROPERTIES.join(",")}`,
      unitName(app, generation),
    ]);
    return parseSystemctlShow(stdout);
  }

  async start(spec: ContainerSpec): Promise<ContainerStatus> {
    validateContainerSpec(spec);
    const unit = unitName(spec.app, spec.generation);
    const before = await this.show(spec.app, spec.generation);
    if (isUnitActive(before)) {
      throw new GildError("GILD_CONFLICT", `${unit} is already running`, { hint: "stop it first" });
    }
    // A failed unit from before --collect was used would block the name.
    if (before.loaded) await runHost("systemctl", ["reset-failed", unit], { allowExit: [1, 5] });
    await checkHostPaths(spec);
    await mkdir(dirname(spec.logFile), { recursive: true });
    const machine = machineName(spec.app, spec.generation, this.runDir);
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
      const tail = await tailFile(spec.logFile, 20);
      throw new GildError("GILD_CONTAINER_START_FAILED", `${err.message}${tail ? `\nlog:\n${tail}` : ""}`, {
        cause: err,
      });
    }
    this.log.info({ app: spec.app, generation: spec.generation, unit }, "container started");
    this.track(spec.app, spec.generation);
    return this.status(spec.app, spec.generation);
  }

  private track(app: string, generation: number): void {
    const key = containerKey(app, generation);
    if (!this.known.has(key)) this.known.set(key, { app, generation, stopping: null });
    this.exits.ensure();
  }

  /** Report units that ended on their own; systemd supervises, the driver only observes. */
  private async checkUnits(): Promise<boolean> {
    for (const [key, known] of this.known) {
      if (known.stopping) continue;
      const state = await this.show(known.app, known.generation);
      if (isUnitActive(state)) continue;
      this.known.delete(key);
      if (known.stopping) continue;
      const status = unitStatus(known.app, known.generation, state, clocksNow());
      this.log.info(
        { app: known.app, generation: known.generation, exitCode: status.exitCode },
        "container ended",
      );
      this.exits.emit(status);
    }
    return this.known.size > 0;
  }

  async stop(app: string, generation: number, opts: { timeoutMs?: number } = {}): Promise<StopResult> {
    assertContainerId(app, generation);
    const key = containerKey(app, generation);
    const known = this.known.get(key) ?? { app, generation, stopping: null };
    if (known.stopping) return known.stopping;
    const state = await this.show(app, generation);
    if (!isUnitActive(state)) return { graceful: true, exitCode: state.exitCode };
    known.stopping = this.terminate(
      app,
      generation,
      opts.timeoutMs ?? state.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
    );
    this.known.set(key, known);
    try {
      return await known.stopping;
    } finally {
      this.known.delete(key);
    }
  }

  /**
   * `systemctl stop` without blocking, then watch the unit: systemd sends SIGTERM to nspawn (which
   * forwards it to the container's init). When `timeoutMs` passes first, every process of the unit gets
   * SIGKILL from here (systemd would do the same at TimeoutStopSec; this honours a shorter timeout).
   */
  private async terminate(app: string, generation: number, timeoutMs: number): Promise<StopResult> {
    const unit = unitName(app, generation);
    this.log.info({ app, generation, timeoutMs }, "stopping container");
    await runHost("systemctl", ["stop", "--no-block", unit]);
    let killed = false;
    let last: UnitState | undefined;
    let deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await this.show(app, generation);
      if (!isUnitActive(state)) break;
      last = state;
      if (Date.now() >= deadline) {
        if (killed) throw new GildError("GILD_TIMEOUT", `${unit} did not end after SIGKILL`);
        this.log.warn({ app, generation, timeoutMs }, "container ignored SIGTERM; killing it");
        // --kill-who (not --kill-whom) is understood by systemd 249 and by later versions alike.
        await runHost("systemctl", ["kill", "--kill-who=all", "--signal=SIGKILL", unit], {
          allowExit: [1, 5],
        });
        killed = true;
        deadline = Date.now() + KILL_GRACE_MS;
      }
      await sleep(STOP_POLL_MS);
    }
    const final = await this.show(app, generation);
    const ended = final.loaded ? final : (last ?? final);
    const graceful = !killed && ended.result !== "timeout" && ended.signal !== "SIGKILL";
    return { graceful, exitCode: graceful ? final.exitCode : null };
  }

  async status(app: string, generation: number): Promise<ContainerStatus> {
    assertContainerId(app, generation);
    return unitStatus(app, generation, await this.show(app, generation), clocksNow());
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
    const out: ContainerStatus[] = [];
    for (const { app, generation } of await this.units()) out.push(await this.status(app, generation));
    return out;
  }

  async adopt(): Promise<ContainerStatus[]> {
    const out: ContainerStatus[] = [];
    for (const status of await this.list()) {
      if (!status.running) continue;
      this.track(status.app, status.generation);
      out.push(status);
    }
    return out;
  }

  async exec(
    app: string,
    generation: number,
    argv: string[],
    opts: { timeoutMs: number },
  ): Promise<ExecResult> {
    assertContainerId(app, generation);
    const state = await this.show(app, generation);
    const init =
      isUnitActive(state) && state.mainPid !== null ? await findContainerInit(state.mainPid) : null;
    if (init === null)
      throw new GildError("GILD_NOT_FOUND", `${app} generation ${generation} is not running`);
    return execInContainer(init, argv, opts.timeoutMs);
  }

  onExit(listener: (status: ContainerStatus) => void): () => void {
    return this.exits.onExit(listener);
  }

  close(): void {
    this.exits.close();
  }
}
