import type { RolloutEvent } from "@gild/core";
import type { ProgressUpdate } from "./command-service.js";
import { JobFeed } from "./job-feed.js";
import type { StoredRollout } from "./store/rollouts-repo.js";

/** What a live view receives. */
export type RolloutUpdate =
  | { type: "record"; rollout: StoredRollout }
  | { type: "event"; event: RolloutEvent }
  | { type: "progress"; hostId: string; progress: ProgressUpdate };

// Transfer rates kept for the plan's estimates: the most recent ones.
const RATES_KEPT = 50;

/**
 * The live side of rollouts, kept in memory only: who watches which rollout (the SSE view of `gild
 * rollout status --follow`), the latest transfer progress per host, and recent transfer rates.
 */
export class RolloutFeed extends JobFeed<RolloutUpdate> {
  /** Latest transfer progress per rollout and host, for live views (not stored). */
  readonly progress = new Map<string, Map<string, ProgressUpdate>>();
  private readonly rates: number[] = [];

  /** A transfer's progress: kept for its rollout's views (when it has one) and for the rate estimate. */
  recordProgress(rolloutId: string | null, hostId: string, progress: ProgressUpdate): void {
    if (progress.rateBytesPerSecond > 0) {
      this.rates.push(progress.rateBytesPerSecond);
      if (this.rates.length > RATES_KEPT) this.rates.shift();
    }
    if (!rolloutId) return;
    const hosts = this.progress.get(rolloutId) ?? new Map<string, ProgressUpdate>();
    hosts.set(hostId, progress);
    this.progress.set(rolloutId, hosts);
    this.emit(rolloutId, { type: "progress", hostId, progress });
  }

  /** The mean of the recent transfer rates (bytes/s), or null before any transfer. */
  meanRate(): number | null {
    return this.rates.length > 0 ? this.rates.reduce((a, b) => a + b, 0) / this.rates.length : null;
  }
}
