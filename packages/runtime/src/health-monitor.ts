import { type Logger, silentLogger } from "@gild/core";
import { type ContainerExec, type ProbeResult, probeOnce } from "./probe-once.js";
import type { ProbeSpec } from "./probe-spec.js";

export type Health = "healthy" | "unhealthy" | "unknown";

export interface HealthState {
  health: Health;
  /** Epoch ms since which `health` holds (for "healthy": the start of the healthy streak); null while unknown. */
  since: number | null;
  /** The same moment on the monotonic clock (performance.now()): durations never follow wall-clock steps. */
  sinceMonotonic: number | null;
  detail: string;
  last: ProbeResult | null;
}

/** A healthy streak already seen (by the switch's health gate): the monitor goes on from it. */
export interface HealthSeed {
  healthyForMs: number;
  detail: string;
}

export interface HealthMonitorOptions {
  exec?: ContainerExec;
  log?: Logger;
  /** Replaces probeOnce (unit tests). */
  runProbe?: (probe: ProbeSpec) => Promise<ProbeResult>;
}

/**
 * Probes one container continuously: the first probe after initialDelayMs, each next one intervalMs
 * after the previous one started (or at once when it took longer), never two at a time.
 */
export class HealthMonitor {
  private readonly probe: ProbeSpec;
  private readonly run: (probe: ProbeSpec) => Promise<ProbeResult>;
  private readonly log: Logger;
  private readonly listeners = new Set<(state: HealthState) => void>();
  private current: HealthState = {
    health: "unknown",
    since: null,
    sinceMonotonic: null,
    detail: "not probed yet",
    last: null,
  };
  private timer: NodeJS.Timeout | null = null;
  /** Bumped by start and stop, so the result of a probe from an earlier run is dropped. */
  private epoch = 0;
  private active = false;

  constructor(probe: ProbeSpec, options: HealthMonitorOptions = {}) {
    this.probe = probe;
    this.log = (options.log ?? silentLogger).child({ component: "health-monitor" });
    this.run = options.runProbe ?? ((p) => probeOnce(p, { exec: options.exec }));
  }

  get state(): HealthState {
    return this.current;
  }

  get running(): boolean {
    return this.active;
  }

  /** Listen to changes of `health`; returns the unsubscribe function. */
  onChange(listener: (state: HealthState) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** How long the current healthy streak has lasted (monotonic), 0 when not healthy. */
  healthyForMs(): number {
    if (this.current.health !== "healthy" || this.current.sinceMonotonic === null) return 0;
    return Math.max(0, Math.round(performance.now() - this.current.sinceMonotonic));
  }

  /** Start probing; with a seed, the state starts healthy for that long instead of unknown. */
  start(seed?: HealthSeed): void {
    if (this.active) return;
    if (seed) {
      this.current = {
        health: "healthy",
        since: Date.now() - seed.healthyForMs,
        sinceMonotonic: performance.now() - seed.healthyForMs,
        detail: seed.detail,
        last: null,
      };
    }
    this.active = true;
    this.epoch++;
    this.schedule(this.probe.initialDelayMs, this.epoch);
  }

  /** Stop probing; the state keeps the last verdict. A probe in flight finishes, but is ignored. */
  stop(): void {
    this.active = false;
    this.epoch++;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number, id: number): void {
    this.timer = setTimeout(() => void this.tick(id), Math.max(0, delayMs));
  }

  private async tick(id: number): Promise<void> {
    this.timer = null;
    const at = Date.now();
    let result: ProbeResult;
    try {
      result = await this.run(this.probe);
    } catch (err) {
      result = {
        ok: false,
        detail: err instanceof Error ? err.message : String(err),
        at,
        durationMs: Date.now() - at,
      };
    }
    if (id !== this.epoch || !this.active) return;
    this.apply(result);
    this.schedule(result.at + this.probe.intervalMs - Date.now(), id);
  }

  private apply(result: ProbeResult): void {
    const health: Health = result.ok ? "healthy" : "unhealthy";
    const changed = health !== this.current.health;
    // result.at is when the probe began: the same moment on the monotonic clock is that long ago.
    const startedMonotonic = performance.now() - Math.max(0, Date.now() - result.at);
    this.current = {
      health,
      since: changed ? result.at : this.current.since,
      sinceMonotonic: changed ? startedMonotonic : this.current.sinceMonotonic,
      detail: result.detail,
      last: result,
    };
    if (!changed) return;
    this.log.info({ health, detail: result.detail }, "health changed");
    for (const listener of this.listeners) listener(this.current);
  }
}
