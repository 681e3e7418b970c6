import { type Logger, silentLogger } from "@gild/core";
import { type ContainerExec, type ProbeResult, probeOnce } from "./probe-once.js";
import type { ProbeSpec } from "./probe-spec.js";

export type Health = "healthy" | "unhealthy" | "unknown";

export interface HealthState {
  health: Health;
  /** Epoch ms since which `health` holds (for "healthy": the start of the healthy streak); null while unknown. */
  since: number | null;
  detail: string;
  last: ProbeResult | null;
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
  private current: HealthState = { health: "unknown", since: null, detail: "not probed yet", last: null };
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

  start(): void {
    if (this.active) return;
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
    this.current = {
      health,
      since: changed ? result.at : this.current.since,
      detail: result.detail,
      last: result,
    };
    if (!changed) return;
    this.log.info({ health, detail: result.detail }, "health changed");
    for (const listener of this.listeners) listener(this.current);
  }
}
