import { type Logger, type LongTimer, setLongTimeout } from "@gild/core";
import type { AgentHub } from "./agent-hub.js";
import type { CommandService } from "./command-service.js";
import { EndOfTurn, OVERDUE_MS } from "./end-of-turn.js";
import { storeFailure } from "./store/store-errors.js";

/**
 * How soon news that is not urgent (JobLoop's `urgent`) is planned: a later wave's prefetch results.
 * At 10,000 hosts a planning step costs 40 to 300 ms, and the 9,000 results of the last wave's
 * prefetch arrived while the wave before it ended: planned at once, they ran steps back to back, and
 * the report that completed that wave waited behind them.
 */
export const NOT_URGENT_WITHIN_MS = 500;

/**
 * A scheduled step that a flood of reports holds back is hurried once it has waited this many times
 * what a planning step costs now (the median of the last STEP_COSTS_KEPT steps), and at least
 * OVERDUE_MS.
 */
export const STEP_WAIT_FACTOR = 2;

/**
 * How many of the last planning steps' costs the wait is the median of. Not the last one alone: the
 * step after a wave starts issues the next wave's prefetches (800 ms at 10,000 hosts, against 50 to
 * 300 ms for most), and the step after it, the one that switches the wave's hosts as their pulls
 * end, then waited 1.6 s.
 */
export const STEP_COSTS_KEPT = 5;

/**
 * The loop under every wave-job executor (rollouts, host updates): planning steps run one at a time per
 * job, soon after a poke (a burst of results costs one step), again at the job's next clock, and again
 * with backoff after a step that failed (nothing of it was stored). It also keeps which active jobs
 * cover which host, so an inventory or a link poke reaches only those.
 */
export class JobLoop {
  /** Each job's next wake (its nearest clock), which may be weeks away (a long bake). */
  private readonly timers = new Map<string, LongTimer>();
  private readonly running = new Map<string, Promise<void>>();
  /**
   * Jobs whose next planning step is scheduled but has not begun: a poke now only hurries it, when a
   * flood of reports keeps the turn it waits for from ending (EndOfTurn).
   */
  private readonly scheduled = new Map<string, EndOfTurn>();
  /**
   * Jobs poked while a step of theirs runs, with the soonest hurry asked for: the step after it keeps
   * that hurry (the news that completes a wave, arriving mid-step, must not wait STEP_WAIT_FACTOR
   * times a step's cost for it).
   */
  private readonly again = new Map<string, number | undefined>();
  /** Host id -> ids of the active jobs that cover it. */
  private readonly byHost = new Map<string, Set<string>>();
  /**
   * How long the last planning steps (of any job) took, in ms, the newest last (STEP_COSTS_KEPT). A
   * poke hurries a step no sooner than twice their median after it was asked for (STEP_WAIT_FACTOR):
   * under a flood of reports planning takes about a third of the event loop at most (at 10,000 hosts
   * a step costs 50 to 800 ms; steps back to back left reports unread for seconds, and with half of
   * the loop the rollout still took longer).
   */
  private readonly stepCosts: number[] = [];
  /** Failed planning steps in a row, per job (for the retry's backoff). */
  private readonly retries = new Map<string, number>();
  /**
   * Jobs with news that is not urgent: the timer that plans them (cleared by any step that begins), and
   * when the first of that news came, for news that finds the timer late.
   */
  private readonly notUrgent = new Map<string, { timer: NodeJS.Timeout; since: number }>();
  /**
   * Per job, the hosts it waits for (deps.waitingOn) that have news since its last step began. When
   * all have, that news may be what completes a wave: at 10,000 hosts a step waited 50 to 250 ms for
   * its hurry while the next wave's reports flooded in, on every wave's last report. Once per set
   * (`hurried`): a host the job still waits for after that step (stuck, or hostile) that keeps
   * reporting gets the usual hurry, so it cannot keep the loop planning back to back.
   */
  private readonly heard = new Map<
    string,
    { waitingOn: ReadonlySet<string>; hosts: Set<string>; hurried: boolean }
  >();
  private closed = false;

  constructor(
    private readonly deps: {
      log: Logger;
      /** What the jobs are called in logs ("rollout", "host update"). */
      noun: string;
      now: () => number;
      /** One planning step; resolves with the job's next wake (absolute), or null for none. */
      step: (jobId: string) => Promise<number | null>;
      /** The prefix of this kind's job ids (`ro_`, `hu_`): a finished command of such a job pokes it. */
      idPrefix: string;
      commands: Pick<CommandService, "addListener">;
      hub: Pick<AgentHub, "addListener">;
      /**
       * Does news of this host (a result, an inventory, its link) need the job planned at once? When
       * not, it is planned within NOT_URGENT_WITHIN_MS, with whatever else came meanwhile. All news is
       * urgent without it.
       */
      urgent?: (jobId: string, hostId: string) => boolean;
      /**
       * The hosts the job waits for to go on, as its last step left it (the same set until the next
       * step changes it): once each has news since that step began, the next step is hurried after
       * OVERDUE_MS, not after STEP_WAIT_FACTOR times a step's cost. None without it.
       */
      waitingOn?: (jobId: string) => ReadonlySet<string> | undefined;
    },
  ) {
    // A command's result, a host that comes or goes: the jobs they concern plan again.
    deps.commands.addListener({
      onFinished: (record) => {
        if (record.rolloutId?.startsWith(deps.idPrefix)) this.pokeFor(record.rolloutId, record.hostId);
      },
    });
    deps.hub.addListener({
      onOnline: (hostId) => this.pokeHost(hostId),
      onOffline: (hostId) => this.pokeHost(hostId),
    });
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) timer.cancel();
    this.timers.clear();
    for (const { timer } of this.notUrgent.values()) clearTimeout(timer);
    this.notUrgent.clear();
    this.heard.clear();
  }

  /** An inventory changed or a host came or went: plan again the active jobs that cover the host. */
  pokeHost(hostId: string): void {
    for (const jobId of this.byHost.get(hostId) ?? []) this.pokeFor(jobId, hostId);
  }

  /** News of `hostId` for a job: plan it at once, or within NOT_URGENT_WITHIN_MS when it can wait. */
  pokeFor(jobId: string, hostId: string): void {
    if (this.heardFromAll(jobId, hostId)) {
      this.poke(jobId, OVERDUE_MS);
      return;
    }
    if (this.deps.urgent?.(jobId, hostId) ?? true) {
      this.poke(jobId);
      return;
    }
    if (this.closed || this.scheduled.has(jobId)) return;
    const waiting = this.notUrgent.get(jobId);
    if (waiting !== undefined) {
      // A timer waits for the turn's timers, as a poke for its end: a flood of reports delays both.
      if (this.deps.now() - waiting.since >= NOT_URGENT_WITHIN_MS) this.poke(jobId);
      return;
    }
    const timer = setTimeout(() => {
      this.notUrgent.delete(jobId);
      this.poke(jobId);
    }, NOT_URGENT_WITHIN_MS);
    this.notUrgent.set(jobId, { timer, since: this.deps.now() });
  }

  /** Note news of `hostId`: does every host the job waits for have news since its last step began? */
  private heardFromAll(jobId: string, hostId: string): boolean {
    const waitingOn = this.deps.waitingOn?.(jobId);
    if (waitingOn === undefined || !waitingOn.has(hostId)) return false;
    let heard = this.heard.get(jobId);
    if (heard === undefined || heard.waitingOn !== waitingOn) {
      heard = { waitingOn, hosts: new Set(), hurried: false };
      this.heard.set(jobId, heard);
    }
    if (heard.hurried) return false;
    heard.hosts.add(hostId);
    if (heard.hosts.size < waitingOn.size) return false;
    heard.hurried = true;
    return true;
  }

  /** Keep the host -> active jobs index current: `active` adds the job to its hosts, else removes it. */
  track(jobId: string, hostIds: readonly string[], active: boolean): void {
    if (!active) this.heard.delete(jobId);
    for (const hostId of hostIds) {
      const set = this.byHost.get(hostId) ?? new Set<string>();
      if (active) set.add(jobId);
      else set.delete(jobId);
      if (set.size > 0) this.byHost.set(hostId, set);
      else this.byHost.delete(hostId);
    }
  }

  /**
   * Plan a job again soon. The step runs after the messages already received are handled (at the end
   * of the turn, EndOfTurn), so a burst of results from a wave of hosts costs one step, not one per
   * result; a poke that finds it waiting longer than hurryAfterMs (or `hurryAfterMs`, if sooner) has
   * it run at once. One job is never planned twice at once.
   */
  poke(jobId: string, hurryAfterMs?: number): void {
    if (this.closed) return;
    const wait = Math.min(hurryAfterMs ?? Number.POSITIVE_INFINITY, this.hurryAfterMs());
    const scheduled = this.scheduled.get(jobId);
    if (scheduled !== undefined) {
      scheduled.request(wait);
      return;
    }
    if (this.running.has(jobId)) {
      const asked = this.again.get(jobId);
      this.again.set(
        jobId,
        hurryAfterMs === undefined ? asked : Math.min(asked ?? Number.POSITIVE_INFINITY, hurryAfterMs),
      );
      return;
    }
    const run = new Promise<void>((resolve) => {
      const turn = new EndOfTurn(resolve, this.deps.now);
      this.scheduled.set(jobId, turn);
      turn.request(wait);
    })
      .then(() => {
        this.scheduled.delete(jobId);
        // This step sees every piece of news that came before it, the news that could wait included.
        clearTimeout(this.notUrgent.get(jobId)?.timer);
        this.notUrgent.delete(jobId);
        return this.closed ? null : this.timedStep(jobId);
      })
      .then(
        (wakeAt) => {
          this.retries.delete(jobId);
          this.wakeAt(jobId, wakeAt ?? null);
        },
        (err: unknown) => this.retryLater(jobId, err),
      )
      .finally(() => {
        this.running.delete(jobId);
        if (this.again.has(jobId)) {
          const hurry = this.again.get(jobId);
          this.again.delete(jobId);
          this.poke(jobId, hurry);
        }
      });
    this.running.set(jobId, run);
  }

  /** How long a scheduled step may wait for the end of the turn (EndOfTurn): see stepCosts. */
  private hurryAfterMs(): number {
    if (this.stepCosts.length === 0) return OVERDUE_MS;
    const sorted = [...this.stepCosts].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] as number;
    return Math.max(OVERDUE_MS, STEP_WAIT_FACTOR * median);
  }

  /** The job's step, timed for the next hurry (stepCosts). */
  private async timedStep(jobId: string): Promise<number | null> {
    const started = this.deps.now();
    // The step sees all news so far: what it waits for is heard from afresh.
    this.heard.get(jobId)?.hosts.clear();
    try {
      return await this.deps.step(jobId);
    } finally {
      this.stepCosts.push(this.deps.now() - started);
      if (this.stepCosts.length > STEP_COSTS_KEPT) this.stepCosts.shift();
    }
  }

  /** Plan the job again at `at` (absolute), replacing its timer; null cancels it. */
  private wakeAt(jobId: string, at: number | null): void {
    this.timers.get(jobId)?.cancel();
    this.timers.delete(jobId);
    if (at === null || this.closed) return;
    const wakeIn = Math.max(0, at - this.deps.now()) + 5;
    this.timers.set(
      jobId,
      setLongTimeout(() => this.poke(jobId), wakeIn),
    );
  }

  /**
   * A planning step failed (the store could not write: a full disk; or a bug): nothing of it was
   * stored, so planning again later starts from the same record. Backs off from 1 s to 30 s.
   */
  retryLater(jobId: string, err: unknown): void {
    const attempt = (this.retries.get(jobId) ?? 0) + 1;
    this.retries.set(jobId, attempt);
    const delayMs = Math.min(30_000, 1000 * 2 ** (attempt - 1));
    const unwritable = storeFailure(err);
    const fields = { job: jobId, retryInMs: delayMs };
    if (unwritable)
      this.deps.log.warn({ ...fields, code: unwritable.code }, `${this.deps.noun} step not stored; retrying`);
    else this.deps.log.error({ ...fields, err }, `${this.deps.noun} step failed; retrying`);
    if (this.closed) return;
    this.timers.get(jobId)?.cancel();
    this.timers.set(
      jobId,
      setLongTimeout(() => this.poke(jobId), delayMs),
    );
  }

  /** Wait until the job's pending planning steps are done (tests, and verbs that answer with the state). */
  async settled(jobId: string): Promise<void> {
    // News that could wait is planned now (the step clears its timer): settled means everything
    // received so far is planned.
    if (this.notUrgent.has(jobId)) this.poke(jobId);
    while (this.running.has(jobId)) await this.running.get(jobId);
  }
}
