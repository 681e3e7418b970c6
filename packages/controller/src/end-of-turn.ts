/**
 * How long work asked for at the end of the event-loop turn may wait while the reports that ask for it
 * keep coming. Node runs a turn's immediates only once it has handled every socket that is ready, and
 * under a flood of reports it keeps finding more: at 10,000 hosts one turn lasted 2.1 s, and the write
 * batch's flush and the planning step that the report completing a wave asked for waited all of it.
 */
export const OVERDUE_MS = 20;

/** Work that waits for the end of the turn now (hurryOverdue looks at these). */
const waiting = new Set<EndOfTurn>();

/**
 * Have every piece of work that waits for the end of the turn longer than it may run right after this
 * callback. The agent hub calls it for every message: a flood of messages that ask for nothing (pongs,
 * a later wave's results) holds back what others asked for no longer than one that asks.
 */
export function hurryOverdue(): void {
  for (const work of waiting) work.hurryIfOverdue();
}

/**
 * Runs `fn` once at the end of this event-loop turn (setImmediate), however often it is asked for
 * meanwhile. Found waiting after its overdue time (OVERDUE_MS unless the request says) by a later
 * request or by hurryOverdue, it runs right after the callback that found it (a microtask) instead.
 */
export class EndOfTurn {
  /** When the waiting run was first asked for (the clock of `now`); undefined when none waits. */
  private since: number | undefined;
  /** How long the waiting run may wait: the least of its requests'. */
  private overdueMs = Number.POSITIVE_INFINITY;
  /** A run already queued as a microtask. */
  private hurried = false;
  /** Bumped by every run and cancel: a queued callback of an older request does nothing. */
  private generation = 0;

  constructor(
    private readonly fn: () => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Does a run wait? */
  get waiting(): boolean {
    return this.since !== undefined;
  }

  /**
   * Run `fn` at the end of this turn, or right after this callback if it was first asked for
   * `overdueMs` ago and still waits (the least `overdueMs` of the requests it waits for).
   */
  request(overdueMs = OVERDUE_MS): void {
    this.overdueMs = Math.min(this.overdueMs, overdueMs);
    if (this.since === undefined) {
      this.since = this.now();
      waiting.add(this);
      const generation = this.generation;
      setImmediate(() => this.run(generation));
      return;
    }
    this.hurryIfOverdue();
  }

  /** Run now-ish (a microtask) if the waiting run has waited its overdue time. */
  hurryIfOverdue(): void {
    if (this.hurried || this.since === undefined || this.now() - this.since < this.overdueMs) return;
    this.hurried = true;
    waiting.delete(this);
    const generation = this.generation;
    queueMicrotask(() => this.run(generation));
  }

  /** Forget the waiting run. */
  cancel(): void {
    this.generation++;
    this.since = undefined;
    this.overdueMs = Number.POSITIVE_INFINITY;
    this.hurried = false;
    waiting.delete(this);
  }

  private run(generation: number): void {
    if (generation !== this.generation) return;
    this.cancel();
    this.fn();
  }
}

/**
 * Resolves in the immediates of this event-loop turn, after those queued before it. A TLS socket
 * writes one chunk at once; what is written to it next waits in Node until an immediate of its own
 * says the first went out, so a long synchronous stretch right after sending holds those bytes back.
 * At 10,000 hosts, planning a wave's prefetch right after its switches held some for 1.2 s.
 */
export function writesGoOut(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
