import type { PidRecord } from "./pid-file.js";
import type { ContainerStatus, StopResult } from "./types.js";

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** The process driver's view of one container: its identity, and how and whether it ended. */
export class TrackedContainer {
  readonly record: PidRecord;
  /** Started by this driver (its 'exit' event is the truth) or adopted (only /proc can tell). */
  readonly own: boolean;
  exit: ExitInfo | null = null;
  /** Set while stop() runs: an exit then is expected and not reported to onExit listeners. */
  stopping: Promise<StopResult> | null = null;
  readonly exited: Promise<void>;
  private resolveExited: () => void = () => undefined;

  constructor(record: PidRecord, own: boolean) {
    this.record = record;
    this.own = own;
    this.exited = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
  }

  /** Record the end once; later calls change nothing. Returns true for the first call. */
  markExited(info: ExitInfo): boolean {
    if (this.exit !== null) return false;
    this.exit = info;
    this.resolveExited();
    return true;
  }

  status(): ContainerStatus {
    const running = this.exit === null;
    return {
      app: this.record.app,
      generation: this.record.generation,
      running,
      pid: running ? this.record.pid : null,
      startedAt: this.record.startedAt,
      exitCode: this.exit?.code ?? null,
      signal: this.exit?.signal ?? null,
    };
  }
}

export function containerKey(app: string, generation: number): string {
  return `${app}/${generation}`;
}

/** The status of a container nothing is known about. */
export function absentStatus(app: string, generation: number): ContainerStatus {
  return { app, generation, running: false, pid: null, startedAt: null, exitCode: null, signal: null };
}
