import {
  GildError,
  hostsHoldingWave,
  isSettledRolloutState,
  isUrgentNews,
  type Logger,
  planRollout,
  type RolloutEvent,
  type RolloutRecord,
} from "@gild/core";
import type { AgentHub } from "./agent-hub.js";
import type { AppService } from "./app-service.js";
import type { CommandService } from "./command-service.js";
import { writesGoOut } from "./end-of-turn.js";
import { failureClusterChange, rolloutFailureClusters } from "./failure-attributes.js";
import type { ImageService } from "./image-service.js";
import { JobLoop } from "./job-loop.js";
import { windowsByHost } from "./maintenance-windows.js";
import type { ControllerMetrics } from "./metrics.js";
import { RolloutDispatcher } from "./rollout-dispatcher.js";
import { RolloutFeed } from "./rollout-feed.js";
import { ObservationCache, observeRollout } from "./rollout-observer.js";
import type { HostRecord } from "./store/hosts-repo.js";
import type { StoredRollout } from "./store/rollouts-repo.js";
import type { Store } from "./store/store.js";

/** The planners speak of host ids (h_ and 16 hex digits); operators read host names. */
export function named<E extends { message: string }>(event: E, hosts: ReadonlyMap<string, HostRecord>): E {
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
  /**
   * The active rollouts as last stored. Only this executor writes them, so a planning step starts
   * from memory instead of parsing a record that grows with the fleet (hundreds of KiB at 1,000 hosts).
   */
  private readonly cache = new Map<string, StoredRollout>();
  /** The hosts each stored record waits for to go on (core's hostsHoldingWave), made when first asked. */
  private readonly holding = new WeakMap<RolloutRecord, ReadonlySet<string>>();
  /** What the last planning step of each active rollout observed (rollout-observer.ts). */
  private readonly observations = new Map<string, ObservationCache>();
  /** Who watches which rollout, live transfer progress, recent rates. */
  readonly feed = new RolloutFeed();
  private readonly log: Logger;
  private readonly dispatcher: RolloutDispatcher;
  private readonly loop: JobLoop;

  constructor(
    private readonly deps: {
      store: Store;
      /** Wave durations; none in tests that build an executor alone. */
      metrics?: ControllerMetrics;
      hub: AgentHub;
      commands: CommandService;
      images: ImageService;
      apps: AppService;
      log: Logger;
      now?: () => number;
    },
  ) {
    this.log = deps.log.child({ component: "rollouts" });
    this.loop = new JobLoop({
      log: this.log,
      noun: "rollout",
      now: () => this.now(),
      step: (rolloutId) => this.evaluate(rolloutId),
      idPrefix: "ro_",
      commands: deps.commands,
      hub: deps.hub,
      urgent: (rolloutId, hostId) => this.urgent(rolloutId, hostId),
      waitingOn: (rolloutId) => this.waitingOn(rolloutId),
    });
    this.dispatcher = new RolloutDispatcher({
      ...deps,
      log: this.log,
      now: () => this.now(),
      poke: (rolloutId, hostId) => this.loop.pokeFor(rolloutId, hostId),
      retryLater: (rolloutId, err) => this.loop.retryLater(rolloutId, err),
    });
    deps.commands.addListener({
      onProgress: (command, progress) =>
        this.feed.recordProgress(command.rolloutId, command.hostId, progress),
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
    this.loop.close();
  }

  /** An inventory changed or a host came or went: re-plan the active rollouts that cover the host. */
  pokeHost(hostId: string): void {
    this.loop.pokeHost(hostId);
  }

  /** Keep the host -> active rollouts index current. */
  private track(record: RolloutRecord): void {
    this.loop.track(record.id, Object.keys(record.hosts), !isSettledRolloutState(record.state));
  }

  /** Must news of this host be planned at once (core's isUrgentNews)? Unknown rollouts: yes. */
  private urgent(rolloutId: string, hostId: string): boolean {
    const record = this.cache.get(rolloutId)?.record;
    return record === undefined || isUrgentNews(record, hostId);
  }

  /** The hosts whose news may let the rollout go on, as last stored (JobLoop's waitingOn). */
  private waitingOn(rolloutId: string): ReadonlySet<string> | undefined {
    const record = this.cache.get(rolloutId)?.record;
    if (record === undefined) return undefined;
    let hosts = this.holding.get(record);
    if (hosts === undefined) {
      hosts = new Set(hostsHoldingWave(record));
      this.holding.set(record, hosts);
    }
    return hosts;
  }

  /** Plan a rollout again soon (JobLoop.poke). */
  poke(rolloutId: string): void {
    this.loop.poke(rolloutId);
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
    if (isSettledRolloutState(stored.record.state)) {
      this.cache.delete(stored.record.id);
      this.observations.delete(stored.record.id);
    } else this.cache.set(stored.record.id, stored);
  }

  private observationCache(rolloutId: string): ObservationCache {
    let cache = this.observations.get(rolloutId);
    if (cache === undefined) {
      cache = new ObservationCache();
      this.observations.set(rolloutId, cache);
    }
    return cache;
  }

  /** Wait until the rollout's pending planning steps are done (tests, and verbs that answer with the state). */
  settled(rolloutId: string): Promise<void> {
    return this.loop.settled(rolloutId);
  }

  private appNames(stored: StoredRollout): Set<string> {
    const ofLine = this.deps.apps.appsOnLine(stored.record.line).map((a) => a.name);
    return new Set(stored.apps === null ? ofLine : ofLine.filter((a) => stored.apps?.includes(a)));
  }

  /**
   * One planning step; resolves with the rollout's next wake, or null. At a wave's start the planner
   * holds the next wave's prefetch back for 1 ms (planRollout), so that the step storing the wave's
   * switches stays small. Once those switches are on the wire (the flush the step queued runs first,
   * then the immediates that let TLS write what it held back), the prefetch is planned at once: after a
   * timer it waited for the next turns' reports, 0.3 to 0.6 s at 10,000 hosts, and was not done when
   * its wave began. Planned in the same turn, it held switches back for up to 1.2 s.
   */
  private async evaluate(rolloutId: string): Promise<number | null> {
    const wake = this.planOnce(rolloutId);
    if (wake === null || wake > this.now() + 1) return wake;
    await writesGoOut();
    return this.planOnce(rolloutId);
  }

  private planOnce(rolloutId: string): number | null {
    const stored = this.load(rolloutId);
    if (!stored) return null;
    const before = stored.record;
    if (isSettledRolloutState(before.state)) {
      this.track(before);
      this.cache.delete(rolloutId);
      this.observations.delete(rolloutId);
      this.deps.metrics?.jobEnded("rollout", rolloutId);
      return null;
    }
    const appNames = this.appNames(stored);
    const image = this.deps.images.get(before.line, before.version);
    // Read once per step, not once per host: a rollout may cover thousands.
    const known = this.deps.store.hosts.byIdNow();
    const rows = this.deps.store.commands.forRollout(rolloutId);
    const observation = observeRollout(before, appNames, {
      hub: this.deps.hub,
      versionUuid: image.uuid,
      known,
      rows,
      windows: windowsByHost(known.values(), this.deps.store.windows.list()),
      cache: this.observationCache(rolloutId),
    });
    const now = this.now();
    const plan = planRollout(before, observation, now);
    const record = plan.rollout;
    const events = plan.events.map((e) => named(e, known));
    const cluster = failureClusterChange(before, record, rolloutFailureClusters, known, now);
    if (cluster) events.push(cluster);
    if (record.state !== before.state) this.track(record);
    if (record !== before || events.length > 0 || plan.markVersion) {
      // The transition, its events and the version's status land together, before any command goes out.
      this.deps.store.transaction(() => {
        // Only the hosts this step changed are written (a wave's worth at most, not the fleet).
        this.deps.store.rollouts.save(record, before);
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
      this.deps.metrics?.jobEvents("rollout", rolloutId, events);
      if (isSettledRolloutState(record.state)) this.deps.metrics?.jobEnded("rollout", rolloutId);
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
    // What this step issued goes out now, not after the next turn's reports (pulls are issued in
    // microtasks queued before this one).
    queueMicrotask(() => this.deps.store.batch.flushNow());
    return plan.nextWakeAt;
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
