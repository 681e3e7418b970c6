import {
  GildError,
  isSettledRolloutState,
  type Logger,
  type LongTimer,
  planRollout,
  type RolloutEvent,
  type RolloutRecord,
  setLongTimeout,
} from "@gild/core";
import type { AgentHub } from "./agent-hub.js";
import type { AppService } from "./app-service.js";
import type { CommandService } from "./command-service.js";
import type { ImageService } from "./image-service.js";
import { RolloutDispatcher } from "./rollout-dispatcher.js";
import { RolloutFeed } from "./rollout-feed.js";
import { observeRollout } from "./rollout-observer.js";
import type { HostRecord } from "./store/hosts-repo.js";
import type { StoredRollout } from "./store/rollouts-repo.js";
import type { Store } from "./store/store.js";
import { storeFailure } from "./store/store-errors.js";

/** The planner speaks of host ids (h_ and 16 hex digits); operators read host names. */
function named(event: RolloutEvent, hosts: ReadonlyMap<string, HostRecord>): RolloutEvent {
  const message = event.message.replace(/\bh_[0-9a-f]{16}\b/g, (id) => hosts.get(id)?.name ?? id);
  return message === event.message ? event : { ...event, message };
}

/**
 * The loop that runs rollouts: observe, plan (the pure planner), store the new record and its events
 * in one transaction, then have the dispatcher (rollout-dispatcher.ts) make sure every command the
 * stored state calls for exists and was sent, with a deterministic id. Operators' starts and verbs
 * come through RolloutOperations (rollout-operations.ts); live views through the feed. Driven by command results, inventory changes, host links and the planner's clocks;
 * a restarted controller picks up every active rollout from the store and resumes exactly.
 */
export class RolloutExecutor {
  /** Each rollout's next wake (its nearest clock), which may be weeks away (a long bake). */
  private readonly timers = new Map<string, LongTimer>();
  private readonly running = new Map<string, Promise<void>>();
  /** Rollouts whose next planning step is scheduled but has not begun: a poke now changes nothing. */
  private readonly scheduled = new Set<string>();
  private readonly again = new Set<string>();
  /**
   * The active rollouts as last stored. Only this executor writes them, so a planning step starts
   * from memory instead of parsing a record that grows with the fleet (hundreds of KiB at 1,000 hosts).
   */
  private readonly cache = new Map<string, StoredRollout>();
  /** Who watches which rollout, live transfer progress, recent rates. */
  readonly feed = new RolloutFeed();
  /** Host id -> ids of the active rollouts that cover it. */
  private readonly byHost = new Map<string, Set<string>>();
  /** Failed planning steps in a row, per rollout (for the retry's backoff). */
  private readonly retries = new Map<string, number>();
  private readonly log: Logger;
  private readonly dispatcher: RolloutDispatcher;
  private closed = false;

  constructor(
    private readonly deps: {
      store: Store;
      hub: AgentHub;
      commands: CommandService;
      images: ImageService;
      apps: AppService;
      log: Logger;
      now?: () => number;
    },
  ) {
    this.log = deps.log.child({ component: "rollouts" });
    this.dispatcher = new RolloutDispatcher({
      ...deps,
      log: this.log,
      now: () => this.now(),
      poke: (rolloutId) => this.poke(rolloutId),
      retryLater: (rolloutId, err) => this.retryLater(rolloutId, err),
    });
    deps.commands.addListener({
      onFinished: (record) => {
        if (record.rolloutId) this.poke(record.rolloutId);
      },
      onProgress: (command, progress) =>
        this.feed.recordProgress(command.rolloutId, command.hostId, progress),
    });
    deps.hub.addListener({
      onOnline: (hostId) => this.pokeHost(hostId),
      onOffline: (hostId) => this.pokeHost(hostId),
    });
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Resume every active rollout (at controller start). */
  resumeAll(): void {
    for (const stored of this.deps.store.rollouts.active()) {
      this.log.info({ rollout: stored.record.id, state: stored.record.state }, "resuming rollout");
      this.track(stored.record);
      this.poke(stored.record.id);
    }
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) timer.cancel();
    this.timers.clear();
  }

  /** An inventory changed or a host came or went: re-plan the active rollouts that cover the host. */
  pokeHost(hostId: string): void {
    for (const rolloutId of this.byHost.get(hostId) ?? []) this.poke(rolloutId);
  }

  /**
   * Keep the host -> active rollouts index current. Inventories arrive for every host all the time;
   * reading the active rollouts from the store for each would parse every big record each time.
   */
  private track(record: RolloutRecord): void {
    const active = !isSettledRolloutState(record.state);
    for (const hostId of Object.keys(record.hosts)) {
      const set = this.byHost.get(hostId) ?? new Set<string>();
      if (active) set.add(record.id);
      else set.delete(record.id);
      if (set.size > 0) this.byHost.set(hostId, set);
      else this.byHost.delete(hostId);
    }
  }

  /**
   * Plan a rollout again soon. The step runs after the messages already received are handled
   * (setImmediate), so a burst of results from a wave of hosts costs one step, not one per result: a
   * step reads every host of the rollout. One rollout is never planned twice at once.
   */
  poke(rolloutId: string): void {
    if (this.closed || this.scheduled.has(rolloutId)) return;
    if (this.running.has(rolloutId)) {
      this.again.add(rolloutId);
      return;
    }
    this.scheduled.add(rolloutId);
    const run = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => {
        this.scheduled.delete(rolloutId);
        return this.closed ? undefined : this.evaluate(rolloutId);
      })
      .then(
        () => {
          this.retries.delete(rolloutId);
        },
        (err: unknown) => this.retryLater(rolloutId, err),
      )
      .finally(() => {
        this.running.delete(rolloutId);
        if (this.again.delete(rolloutId)) this.poke(rolloutId);
      });
    this.running.set(rolloutId, run);
  }

  /**
   * A planning step failed (the store could not write: a full disk; or a bug): nothing of it was
   * stored, so planning again later starts from the same record. Backs off from 1 s to 30 s.
   */
  private retryLater(rolloutId: string, err: unknown): void {
    const attempt = (this.retries.get(rolloutId) ?? 0) + 1;
    this.retries.set(rolloutId, attempt);
    const delayMs = Math.min(30_000, 1000 * 2 ** (attempt - 1));
    const unwritable = storeFailure(err);
    if (unwritable)
      this.log.warn(
        { rollout: rolloutId, code: unwritable.code, retryInMs: delayMs },
        "rollout step not stored; retrying",
      );
    else this.log.error({ rollout: rolloutId, err, retryInMs: delayMs }, "rollout step failed; retrying");
    if (this.closed) return;
    this.timers.get(rolloutId)?.cancel();
    this.timers.set(
      rolloutId,
      setLongTimeout(() => this.poke(rolloutId), delayMs),
    );
  }

  /** The stored rollout, from memory while it is active. */
  private load(rolloutId: string): StoredRollout | undefined {
    const cached = this.cache.get(rolloutId);
    if (cached) return cached;
    const stored = this.deps.store.rollouts.get(rolloutId);
    if (stored) this.remember(stored);
    return stored;
  }

  private remember(stored: StoredRollout): void {
    if (isSettledRolloutState(stored.record.state)) this.cache.delete(stored.record.id);
    else this.cache.set(stored.record.id, stored);
  }

  /** Wait until the rollout's pending planning steps are done (tests, and verbs that answer with the state). */
  async settled(rolloutId: string): Promise<void> {
    while (this.running.has(rolloutId)) await this.running.get(rolloutId);
  }

  private appNames(stored: StoredRollout): Set<string> {
    const ofLine = this.deps.apps.appsOnLine(stored.record.line).map((a) => a.name);
    return new Set(stored.apps === null ? ofLine : ofLine.filter((a) => stored.apps?.includes(a)));
  }

  private async evaluate(rolloutId: string): Promise<void> {
    const stored = this.load(rolloutId);
    if (!stored) return;
    const before = stored.record;
    if (isSettledRolloutState(before.state)) {
      this.timers.get(rolloutId)?.cancel();
      this.track(before);
      this.cache.delete(rolloutId);
      return;
    }
    const appNames = this.appNames(stored);
    const image = this.deps.images.get(before.line, before.version);
    // Read once per step, not once per host: a rollout may cover thousands.
    const known = new Map(this.deps.store.hosts.list().map((h) => [h.id, h]));
    const rows = this.deps.store.commands.forRollout(rolloutId);
    const observation = observeRollout(before, appNames, {
      hub: this.deps.hub,
      versionUuid: image.uuid,
      known,
      rows,
    });
    const now = this.now();
    const plan = planRollout(before, observation, now);
    const record = plan.rollout;
    const events = plan.events.map((e) => named(e, known));
    if (record.state !== before.state) this.track(record);
    if (record !== before || events.length > 0 || plan.markVersion) {
      // The transition, its events and the version's status land together, before any command goes out.
      this.deps.store.transaction(() => {
        this.deps.store.rollouts.save(record);
        this.deps.store.rollouts.appendEvents(rolloutId, events);
        if (plan.markVersion) this.deps.images.setStatus(record.line, record.version, plan.markVersion);
        // Proven on every host: what the apps run at from now on (and what a host added to one gets).
        if (plan.markVersion === "stable")
          for (const app of appNames)
            this.deps.store.apps.setVersions(
              app,
              image.kind === "code" ? { code: record.version } : { image: record.version },
            );
      });
      this.remember({ ...stored, record });
      for (const event of events) {
        this.log.info(
          { rollout: rolloutId, kind: event.kind, host: event.hostId, wave: event.wave },
          event.message,
        );
        this.feed.emit(rolloutId, { type: "event", event });
      }
      this.feed.emit(rolloutId, { type: "record", rollout: { ...stored, record } });
    }
    this.dispatcher.withdraw(record);
    this.dispatcher.dispatch({ ...stored, record }, appNames, known, rows);
    this.timers.get(rolloutId)?.cancel();
    this.timers.delete(rolloutId);
    if (plan.nextWakeAt !== null && !this.closed) {
      const wakeIn = Math.max(0, plan.nextWakeAt - this.now()) + 5;
      this.timers.set(
        rolloutId,
        setLongTimeout(() => this.poke(rolloutId), wakeIn),
      );
    }
  }

  /**
   * A rollout changed outside the loop (started, or an operator's verb), already stored with its
   * events: keep it, tell the live views, plan it.
   */
  changed(stored: StoredRollout, events: readonly RolloutEvent[]): void {
    const { record } = stored;
    this.remember(stored);
    this.track(record);
    for (const event of events) this.feed.emit(record.id, { type: "event", event });
    this.feed.emit(record.id, { type: "record", rollout: stored });
    this.poke(record.id);
  }

  get(rolloutId: string): StoredRollout {
    const stored = this.load(rolloutId);
    if (!stored)
      throw new GildError("GILD_ROLLOUT_NOT_FOUND", `no rollout ${rolloutId}`, {
        hint: "list them with `gild rollout ls`",
      });
    return stored;
  }
}
