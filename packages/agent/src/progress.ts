import type { TransferPhase, TransferProgress } from "@gild/protocol";

/**
 * Throttled transfer progress for the control channel: at most one report per interval, with a rate
 * over the recent window, and always the final one.
 */
export class ProgressReporter {
  private lastSentAt = 0;
  private window: Array<{ at: number; bytes: number }> = [];

  constructor(
    private readonly send: (progress: TransferProgress) => void,
    private readonly intervalMs = 500,
    private readonly now: () => number = Date.now,
  ) {}

  update(bytesDone: number, bytesTotal: number, phase: TransferPhase): void {
    const at = this.now();
    this.window.push({ at, bytes: bytesDone });
    while (this.window.length > 2 && at - (this.window[0] as { at: number }).at > 5_000) this.window.shift();
    const final = bytesDone >= bytesTotal;
    if (!final && at - this.lastSentAt < this.intervalMs) return;
    this.lastSentAt = at;
    const first = this.window[0] as { at: number; bytes: number };
    const seconds = (at - first.at) / 1000;
    const rate = seconds > 0 ? Math.max(0, Math.round((bytesDone - first.bytes) / seconds)) : 0;
    this.send({ bytesDone, bytesTotal, rateBytesPerSecond: rate, phase });
  }
}
