import { EndOfTurn } from "../end-of-turn.js";

/**
 * Writes of one kind that wait in memory for the batch: a repository keeps them (and answers reads
 * from them), `take` hands them over to be written in the batch's transaction, `restore` takes back
 * what a transaction that failed did not keep.
 */
export interface DeferredWrites<T = unknown> {
  /**
   * Hand over what waits now (the repository forgets it: it is about to be in the database), or the
   * part of it that `scope` allows (TakeScope).
   */
  take(scope: TakeScope): T;
  /** Write what `take` handed over, inside the batch's transaction. */
  write(taken: T): void;
  /** The transaction that wrote `taken` rolled back: keep it waiting again, under anything newer. */
  restore(taken: T): void;
  /** The transaction that wrote `taken` committed: run what waited for exactly these writes. */
  committed?(taken: T): void;
  /** Does something wait for one of these writes to be on disk (a command to send)? */
  awaitsCommit?(): boolean;
}

/**
 * Which transaction takes what waits, and so how much of it a source must hand over:
 * - `turn`: the batch's own flush of a turn. A source may keep a part for the next turns (a wave's
 *   10,000 new commands go out a slice at a time, the first slice after a small commit).
 * - `transaction`: any other transaction of the store (a planning step, an operator's verb). It takes
 *   everything but what may land after a later write without harm: nothing else waiting is committed
 *   after it. Only new image pulls stay (CommandsRepo.take says why).
 * - `all`: the last transaction, as the store closes.
 */
export type TakeScope = "turn" | "transaction" | "all";

/** What one transaction of the store took from the batch. */
export interface TakenWrites {
  taken: unknown[];
  after: Array<() => void>;
}

/**
 * How long the batch's flush may wait while a flood of reports keeps the turn from ending (EndOfTurn).
 * Nothing that must be quick waits on it: reads see what waits, and a planning step that issued
 * commands flushes at once (flushNow). Each flush is a transaction, so fewer of them leave more of a
 * flood's loop to the reports: at 10,000 hosts, flushing every 20 ms made rollouts slower (11 to 15 s
 * against 9 to 12 s) and no wave started sooner.
 */
export const FLUSH_OVERDUE_MS = 100;

/**
 * Writes batched per event-loop turn (issue 16). The reports that dominate a big fleet (command
 * statuses, inventories, new commands) each cost a transaction and an fsync when written alone: at
 * 10,000 hosts the report that completes a wave waited behind thousands of them. Instead a repository
 * records the write in memory (where its reads see it at once) and asks for a flush; the flush, at
 * the end of the turn (EndOfTurn: no later than FLUSH_OVERDUE_MS into a flood of reports), writes everything
 * waiting in one transaction. What must be durable before something
 * happens (a command before it is sent) runs in `afterCommit`, only once its write is on disk.
 * Any explicit transaction of the store writes what waits first, so nothing waiting is committed
 * after a later write, new image pulls aside (TakeScope).
 */
export class WriteBatch {
  private readonly sources: Array<DeferredWrites<unknown>> = [];
  private after: Array<() => void> = [];
  private readonly turn: EndOfTurn;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** The batch's own flush is running: what asks for another waits until it is over. */
  private flushing = false;
  private flushAgain = false;
  /** What the transaction open now takes of what waits (TakeScope). */
  private scope: TakeScope = "transaction";

  constructor(
    private readonly deps: {
      /**
       * Run `fn` in one transaction of the store (committed when it returns; on disk then if `durable`,
       * else with the next durable commit).
       */
      transaction: (fn: () => void, durable: boolean) => void;
      /** A flush failed (a full disk, say); everything stays waiting and is tried again in retryInMs. */
      onFailure: (err: unknown, retryInMs: number) => void;
      /** A monotonic clock in ms (EndOfTurn's); performance.now without it. */
      now?: () => number;
    },
  ) {
    this.turn = new EndOfTurn(() => this.flushOrRetry(), deps.now);
  }

  register<T>(source: DeferredWrites<T>): void {
    this.sources.push(source as DeferredWrites<unknown>);
  }

  /** Something waits: flush at the end of this event-loop turn. */
  schedule(): void {
    if (this.retryTimer !== undefined || this.closed) return;
    if (this.flushing) {
      // After this flush, if it commits; if it fails, its retry writes everything anyway.
      this.flushAgain = true;
      return;
    }
    // Every report of a flood asks again: the one that finds the flush overdue has it run now.
    this.turn.request(FLUSH_OVERDUE_MS);
  }

  /**
   * Flush now, within this turn, if a send waits for a commit (a planning step that issued commands):
   * the first of a wave's commands leave without waiting for the next turn's reports to be handled
   * first. A flush that fails waits and is tried again with backoff, as the turn's own.
   */
  flushNow(): void {
    if (this.closed || this.flushing || this.retryTimer !== undefined || !this.awaitsCommit()) return;
    this.flushOrRetry();
  }

  /** Does something wait for what waits now to be on disk (a send)? Then a flush is synced. */
  private awaitsCommit(): boolean {
    return this.after.length > 0 || this.sources.some((s) => s.awaitsCommit?.() === true);
  }

  /** Run `fn` once everything waiting now (and what waits when the next flush begins) is committed. */
  afterCommit(fn: () => void): void {
    this.after.push(fn);
    this.schedule();
  }

  /**
   * Write what waits, in the transaction already open, recording what was taken in `batch` (so that
   * a rollback, also one in the middle of this, can give it back); the caller commits, then calls
   * `committed`, or `rolledBack`.
   */
  writeWaiting(batch: TakenWrites): void {
    batch.after = this.after;
    this.after = [];
    for (const source of this.sources) {
      const taken = source.take(this.scope);
      batch.taken.push(taken);
      source.write(taken);
    }
  }

  /** The transaction that wrote `batch` committed: run what waited for it (every one, even if one throws). */
  committed(batch: TakenWrites): void {
    let first: unknown;
    batch.taken.forEach((taken, i) => {
      try {
        this.sources[i]?.committed?.(taken);
      } catch (err) {
        first ??= err;
      }
    });
    for (const fn of batch.after) {
      try {
        fn();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** The transaction that wrote `batch` rolled back: everything in it waits again. */
  rolledBack(batch: TakenWrites): void {
    batch.taken.forEach((taken, i) => {
      this.sources[i]?.restore(taken);
    });
    this.after = [...batch.after, ...this.after];
    if (batch.after.length > 0 || batch.taken.length > 0) this.schedule();
  }

  /**
   * Write everything waiting now, in one transaction (throws what the store threw; nothing is lost).
   * Only when something waits for the commit (a command to send) is it synced to disk at once: reports
   * alone (statuses, inventories) are what agents send again, and they are made durable by the next
   * synced commit, which at 10,000 hosts saves most of the fsyncs.
   */
  flush(): void {
    this.deps.transaction(() => {
      // Nothing of its own: the store's transaction writes what waits before running this.
    }, this.awaitsCommit());
  }

  /** Flush now, at the end of the store's life (what cannot be written then is lost, as in a crash). */
  close(): void {
    this.closed = true;
    this.scope = "all";
    this.turn.cancel();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.deps.transaction(() => {
      // Nothing of its own, as flush; synced, since nothing comes after it.
    }, true);
  }

  /**
   * The flush of a turn: sources may keep part of what waits for the next turn (a wave's 10,000 new
   * commands go out a slice at a time, the first slice after a small commit, not after all of them).
   */
  private flushOrRetry(): void {
    this.flushing = true;
    this.scope = "turn";
    try {
      this.flush();
      this.failures = 0;
    } catch (err) {
      this.failures++;
      const retryInMs = Math.min(30_000, 1000 * 2 ** (this.failures - 1));
      this.deps.onFailure(err, retryInMs);
      if (this.closed) return;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.flushOrRetry();
      }, retryInMs);
    } finally {
      this.flushing = false;
      this.scope = "transaction";
      if (this.flushAgain) {
        this.flushAgain = false;
        this.schedule();
      }
    }
  }
}
