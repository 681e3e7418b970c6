import { GildError, type Logger } from "@gild/core";
import { aptStateStamp, pendingUpdates, rebootRequired } from "@gild/runtime";

/** How often the host's maintenance facts are looked at again. */
export const MAINTENANCE_REFRESH_MS = 5 * 60_000;
/** The longest the apt simulation may take (it reads only local files: 1-3 s is usual). */
export const APT_SIMULATION_TIMEOUT_MS = 20_000;

export interface MaintenanceFactsOptions {
  log: Logger;
  refreshMs?: number;
  timeoutMs?: number;
}

/**
 * The facts of the host's own maintenance, for `gild hosts`: pending package updates (`updates`,
 * `securityUpdates`: counts, or "unknown" where apt-get is missing or fails) and Debian's reboot flag
 * (`rebootRequired`: yes or no; `rebootRequiredPackages`: the packages that set it). They travel in
 * the Hello, so a refresh reaches the controller at the agent's next connection; the simulation runs
 * again only when apt's state changed.
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

  private refresh(): Promise<void> {
    this.running ??= this.look().finally(() => {
      this.running = undefined;
    });
    return this.running;
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
    if (stamp === undefined || stamp !== this.stamp) {
      try {
        const updates = await pendingUpdates({
          timeoutMs: this.options.timeoutMs ?? APT_SIMULATION_TIMEOUT_MS,
          cancelSignal: this.abort.signal,
        });
        next.updates = String(updates.total);
        next.securityUpdates = String(updates.security);
        this.stamp = stamp;
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
  }
}
