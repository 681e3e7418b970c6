import { join } from "node:path";
import { GildError, type Logger } from "@gild/core";
import { aptStateStamp, pendingUpdates, rebootRequired } from "@gild/runtime";
import { readIfExists, writeFileAtomic } from "./write-atomic.js";

/** How often the host's maintenance facts are looked at again. */
export const MAINTENANCE_REFRESH_MS = 5 * 60_000;
/** The longest the apt simulation may take (it reads only local files: 1-3 s is usual). */
export const APT_SIMULATION_TIMEOUT_MS = 20_000;

export interface MaintenanceFactsOptions {
  log: Logger;
  /** Where the last count is kept with its apt stamp, so a restart with apt unchanged does not count again. */
  stateDir: string;
  refreshMs?: number;
  timeoutMs?: number;
  /** After each look: the facts may have changed (the inventory carries them). */
  onChange?: () => void;
}

/**
 * The facts of the host's own maintenance, for `gild hosts`: pending package updates (`updates`,
 * `securityUpdates`: counts, or "unknown" where apt-get is missing or fails) and Debian's reboot flag
 * (`rebootRequired`: yes or no; `rebootRequiredPackages`: the packages that set it). They travel in
 * the Hello and, as they change, in the inventory (protocol 2); the simulation runs again only when
 * apt's state changed, also across restarts (`<state>/host-updates.json`).
 */
export class MaintenanceFacts {
  private facts: Record<string, string> = {
    updates: "unknown",
    securityUpdates: "unknown",
    rebootRequired: "unknown",
  };
  private stamp: string | undefined;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly log: Logger;

  constructor(private readonly options: MaintenanceFactsOptions) {
    this.log = options.log.child({ component: "maintenance-facts" });
  }

  /** Look now and every few minutes; resolves after the first look, which never rejects. */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? MAINTENANCE_REFRESH_MS);
    this.timer.unref();
    return this.refresh();
  }

  current(): Record<string, string> {
    return { ...this.facts };
  }

  stop(): void {
    clearInterval(this.timer);
    this.abort.abort();
  }

  /** Look again now (after a host command, which may have changed both); one look at a time. */
  refresh(): Promise<void> {
    this.running ??= this.look().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private get cacheFile(): string {
    return join(this.options.stateDir, "host-updates.json");
  }

  /** The count kept by an earlier agent, if apt's state is still the one it was made for. */
  private async cached(stamp: string): Promise<{ updates: string; securityUpdates: string } | undefined> {
    const text = await readIfExists(this.cacheFile).catch(() => null);
    if (text === null) return undefined;
    try {
      const kept = JSON.parse(text) as { stamp?: unknown; updates?: unknown; securityUpdates?: unknown };
      if (
        kept.stamp !== stamp ||
        typeof kept.updates !== "string" ||
        typeof kept.securityUpdates !== "string"
      ) {
        return undefined;
      }
      return { updates: kept.updates, securityUpdates: kept.securityUpdates };
    } catch {
      // Only a cache: a damaged one is counted again (and rewritten), never trusted.
      return undefined;
    }
  }

  private async look(): Promise<void> {
    const next = { ...this.facts };
    try {
      const reboot = await rebootRequired();
      next.rebootRequired = reboot.required ? "yes" : "no";
      if (reboot.packages.length > 0) next.rebootRequiredPackages = reboot.packages.join(" ");
      else delete next.rebootRequiredPackages;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "reading the reboot flag failed");
      next.rebootRequired = "unknown";
    }
    const stamp = await aptStateStamp().catch(() => undefined);
    const kept = this.stamp === undefined && stamp !== undefined ? await this.cached(stamp) : undefined;
    if (kept) {
      Object.assign(next, kept);
      this.stamp = stamp;
    } else if (stamp === undefined || stamp !== this.stamp) {
      try {
        const updates = await pendingUpdates({
          timeoutMs: this.options.timeoutMs ?? APT_SIMULATION_TIMEOUT_MS,
          cancelSignal: this.abort.signal,
        });
        next.updates = String(updates.total);
        next.securityUpdates = String(updates.security);
        this.stamp = stamp;
        if (stamp !== undefined) {
          const record = { stamp, updates: next.updates, securityUpdates: next.securityUpdates };
          await writeFileAtomic(this.cacheFile, `${JSON.stringify(record)}\n`).catch((err: unknown) =>
            this.log.warn({ err: (err as Error).message }, "keeping the update count failed"),
          );
        }
      } catch (err) {
        next.updates = "unknown";
        next.securityUpdates = "unknown";
        this.stamp = undefined;
        if (!this.abort.signal.aborted) {
          const missing = err instanceof GildError && err.code === "GILD_TOOL_MISSING";
          this.log[missing ? "info" : "warn"](
            { err: (err as Error).message },
            missing
              ? "apt-get is not installed: pending updates are unknown"
              : "counting pending updates failed",
          );
        }
      }
    }
    this.facts = next;
    this.options.onChange?.();
  }
}
