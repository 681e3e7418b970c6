import type { Logger } from "@gild/core";
import type { ContainerStatus } from "./types.js";

/** Defaults of RuntimeDriverOptions. */
export const DEFAULT_START_TIMEOUT_MS = 15_000;
export const DEFAULT_WATCH_INTERVAL_MS = 1_000;

/**
 * What both drivers share to notice containers ending that no 'exit' event reports (adopted
 * processes, systemd units): a poll, never overlapping itself and never keeping the process alive,
 * that runs while `check` says something is left to watch, and the listeners it reports ends to.
 */
export class ExitWatch {
  private readonly listeners = new Set<(status: ContainerStatus) => void>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private closed = false;

  constructor(
    private readonly options: {
      intervalMs: number;
      /** Report what ended; true while something is left to watch. */
      check: () => Promise<boolean>;
      log: Logger;
      what: string;
    },
  ) {}

  /** Poll from now on (a no-op while polling, and once closed). */
  ensure(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      if (!(await this.options.check())) this.stop();
    } catch (err) {
      this.options.log.warn({ err }, `checking ${this.options.what} failed`);
    } finally {
      this.checking = false;
    }
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Tell every listener that a container ended (nobody, once closed). */
  emit(status: ContainerStatus): void {
    if (this.closed) return;
    for (const listener of this.listeners) listener(status);
  }

  onExit(listener: (status: ContainerStatus) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  close(): void {
    this.closed = true;
    this.stop();
    this.listeners.clear();
  }
}
