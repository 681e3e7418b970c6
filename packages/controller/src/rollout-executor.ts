import { randomBytes } from "node:crypto";
import {
  commandsCalledFor,
  createRollout,
  estimateTimeline,
  GildError,
  isSettledRolloutState,
  type Logger,
  type LongTimer,
  planRollout,
  ROLLOUT_VERBS,
  type RolloutCommand,
  type RolloutEvent,
  type RolloutRecord,
  type RolloutTarget,
  type RolloutVerb,
  setLongTimeout,
  type Timeline,
  toGildError,
  type VerbOptions,
  withdrawalsFor,
} from "@gild/core";
import type { AgentHub } from "./agent-hub.js";
import type { AppService } from "./app-service.js";
import type { CommandService, ProgressUpdate } from "./command-service.js";
import { hostHasVersion, type ImageService, pickParent } from "./image-service.js";
import { appsInScope, observeRollout, rolloutCommandId } from "./rollout-observer.js";
import { checkRolloutRequest, type RolloutRequest } from "./rollout-request.js";
import type { CommandRecord } from "./store/commands-repo.js";
import type { HostRecord } from "./store/hosts-repo.js";
import type { StoredRollout } from "./store/rollouts-repo.js";
import type { Store } from "./store/store.js";
import { storeFailure } from "./store/store-errors.js";

/** What an operator asks for: `gild rollout start|plan php@3 [flags]`. */
export type { RolloutRequest } from "./rollout-request.js";

/** What a live view receives. */
export type RolloutUpdate =
  | { type: "record"; rollout: StoredRollout }
  | { type: "event"; event: RolloutEvent }
  | { type: "progress"; hostId: string; progress: ProgressUpdate };

/** The planner speaks of host ids (h_ and 16 hex digits); operators read host names. */
function named(event: RolloutEvent, hosts: ReadonlyMap<string, HostRecord>): RolloutEvent {
  const message = event.message.replace(/\bh_[0-9a-f]{16}\b/g, (id) => hosts.get(id)?.name ?? id);
  return message === event.message ? event : { ...event, message };
}

/**
 * Runs rollouts: observe, plan (the pure planner), store the new record and its events in one
 * transaction, then make sure every command the stored state calls for exists and was sent, with a
 * deterministic id. Driven by command results, inventory changes, host links and the planner's clocks;
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
  private readonly dispatching = new Set<string>();
  private readonly listeners = new Map<string, Set<(u: RolloutUpdate) => void>>();
  /** Latest transfer progress per rollout and host, for live views (not stored). */
  readonly progress = new Map<string, Map<string, ProgressUpdate>>();
  /** Recent transfer rates (bytes/s), for plan estimates. */
  private readonly rates: number[] = [];
  /** Host id -> ids of the active rollouts that cover it. */
  private readonly byHost = new Map<string, Set<string>>();
  /** Failed planning steps in a row, per rollout (for the retry's backoff). */
  private readonly retries = new Map<string, number>();
  private readonly log: Logger;
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
    deps.commands.addListener({
      onFinished: (record) => {
        if (record.rolloutId) this.poke(record.rolloutId);
      },
      onProgress: (command, progress) => {
        const rolloutId = command.rolloutId;
        if (progress.rateBytesPerSecond > 0) this.recordRate(progress.rateBytesPerSecond);
        if (!rolloutId) return;
        const hosts = this.progress.get(rolloutId) ?? new Map<string, ProgressUpdate>();
        hosts.set(command.hostId, progress);
        this.progress.set(rolloutId, hosts);
        this.emit(rolloutId, { type: "progress", hostId: command.hostId, progress });
      },
    });
    deps.hub.addListener({
      onOnline: (hostId) => this.pokeHost(hostId),
      onOffline: (hostId) => this.pokeHost(hostId),
    });
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private recordRate(rate: number): void {
    this.rates.push(rate);
    if (this.rates.length > 50) this.rates.shift();
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

  subscribe(rolloutId: string, listener: (u: RolloutUpdate) => void): () => void {
    const set = this.listeners.get(rolloutId) ?? new Set();
    set.add(listener);
    this.listeners.set(rolloutId, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(rolloutId);
    };
  }

  private emit(rolloutId: string, update: RolloutUpdate): void {
    for (const listener of this.listeners.get(rolloutId) ?? []) listener(update);
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
      });
      this.remember({ ...stored, record });
      for (const event of events) {
        this.log.info(
          { rollout: rolloutId, kind: event.kind, host: event.hostId, wave: event.wave },
          event.message,
        );
        this.emit(rolloutId, { type: "event", event });
      }
      this.emit(rolloutId, { type: "record", rollout: { ...stored, record } });
    }
    this.withdraw(record);
    this.dispatch({ ...stored, record }, appNames, known, rows);
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

  /** Withdraw what core's withdrawalsFor says the record no longer wants (never rollbacks). */
  private withdraw(record: RolloutRecord): void {
    const now = this.now();
    for (const { hostId, kinds } of withdrawalsFor(record)) {
      const commandKinds = kinds.map((k) => (k === "fetch" ? "pullImage" : "deployApp"));
      const ids = this.deps.store.commands.cancelPending(record.id, hostId, now, commandKinds);
      if (ids.length > 0)
        this.log.info({ rollout: record.id, hostId, commands: ids }, "withdrew commands no host had taken");
    }
  }

  /**
   * Send every command the stored record calls for (core's commandsCalledFor, the rule the planner's
   * tests check), through one sender per kind. Ids are deterministic, so a command already issued is
   * not issued again, also after a restart.
   */
  private dispatch(
    stored: StoredRollout,
    appNames: ReadonlySet<string>,
    hosts: ReadonlyMap<string, HostRecord>,
    rows: readonly CommandRecord[],
  ): void {
    const record = stored.record;
    // As read at the start of this step: commands issued since then have ids this step cannot repeat.
    const issued = new Map(rows.map((c) => [c.id, c]));
    const senders: {
      [K in RolloutCommand["kind"]]: (
        host: HostRecord,
        command: Extract<RolloutCommand, { kind: K }>,
      ) => void;
    } = {
      fetch: (host, command) => this.sendFetch(record, host, command.attempt, issued),
      switch: (host) => this.sendSwitches(record, host, appNames, issued),
      rollback: (host) => this.sendRollbacks(record, host, appNames, issued),
    };
    for (const command of commandsCalledFor(record)) {
      const host = hosts.get(command.hostId);
      if (!host) continue;
      (senders[command.kind] as (h: HostRecord, c: RolloutCommand) => void)(host, command);
    }
  }

  private sendFetch(
    record: RolloutRecord,
    host: HostRecord,
    attempt: number,
    issued: ReadonlyMap<string, CommandRecord>,
  ): void {
    const id = rolloutCommandId.fetch(record.id, host.id, attempt);
    if (issued.has(id) || this.dispatching.has(id)) return;
    this.dispatching.add(id);
    // Making the artifact may take a while: it must not hold up planning.
    this.deps.images
      .issuePull(host, record.line, record.version, { commandId: id, rolloutId: record.id })
      .then(
        () => this.poke(record.id),
        (err: unknown) => {
          if (storeFailure(err)) {
            // Not the host's failure: nothing was stored, and the pull is issued again later.
            this.retryLater(record.id, err);
            return;
          }
          const gild = toGildError(err);
          this.log.error(
            { rollout: record.id, host: host.name, err: gild.message },
            "could not issue the image pull",
          );
          try {
            this.deps.commands.recordLocalFailure({
              id,
              hostId: host.id,
              kind: "pullImage",
              rolloutId: record.id,
              error: gild,
            });
            this.poke(record.id);
          } catch (recordErr) {
            this.retryLater(record.id, recordErr);
          }
        },
      )
      .finally(() => this.dispatching.delete(id));
  }

  /** The switch of every app of the line on the host that the rollout covers. */
  private sendSwitches(
    record: RolloutRecord,
    host: HostRecord,
    appNames: ReadonlySet<string>,
    issued: ReadonlyMap<string, CommandRecord>,
  ): void {
    for (const app of appsInScope(host.inventory, record.line, appNames)) {
      const id = rolloutCommandId.switch(record.id, host.id, app.name);
      if (issued.has(id)) continue;
      const spec = this.deps.apps.spec(app.name);
      this.deps.commands.issue({
        id,
        hostId: host.id,
        rolloutId: record.id,
        body: this.deps.apps.deployBody(spec, record.version, record.strategy.healthyDeadlineMs),
      });
    }
  }

  /**
   * The rollback of every app whose switch did not fail (succeeded, or its outcome is unknown: the host
   * may be cut off). It applies only while the app runs the rollout's version, so one that never
   * switched, or went back on its own, is not moved one further; and it stays queued for a host that is
   * away until it returns, whatever the rollout has decided meanwhile.
   */
  private sendRollbacks(
    record: RolloutRecord,
    host: HostRecord,
    appNames: ReadonlySet<string>,
    issued: ReadonlyMap<string, CommandRecord>,
  ): void {
    // An agent of protocol 1 does not know onlyFromImageVersion: it gets a rollback only for a switch
    // known to have succeeded (a rollback of an app already back would take it one further).
    const guarded = host.protocolVersion >= 2;
    for (const app of appsInScope(host.inventory, record.line, appNames)) {
      const switched = issued.get(rolloutCommandId.switch(record.id, host.id, app.name));
      if (switched?.state === "failed" || (!guarded && switched?.state !== "succeeded")) continue;
      const id = rolloutCommandId.rollback(record.id, host.id, app.name);
      if (issued.has(id)) continue;
      this.deps.commands.issue({
        id,
        hostId: host.id,
        rolloutId: record.id,
        body: {
          rollbackApp: {
            name: app.name,
            healthyDeadlineMs: record.strategy.healthyDeadlineMs,
            onlyFromImageVersion: record.version,
          },
        },
      });
    }
  }

  /** A checked request and the rollout record it makes (refused while another one of the line is active). */
  private build(request: RolloutRequest, id: string): { record: RolloutRecord; apps: string[] | null } {
    const checked = checkRolloutRequest(request, {
      imageExists: (line, version) => this.deps.store.images.get(line, version) !== undefined,
      appsOnLine: (line) => this.deps.apps.appsOnLine(line).map((a) => a.name),
      hosts: () => this.deps.store.hosts.list(),
    });
    const { line, version, strategy } = checked;
    const targets: RolloutTarget[] = [];
    for (const host of checked.hosts) {
      const apps = appsInScope(host.inventory, line, checked.appNames);
      if (apps.length > 0)
        targets.push({
          hostId: host.id,
          hostName: host.name,
          apps: apps.map((a) => ({ name: a.name, version: a.imageVersion })),
        });
    }
    const active = this.deps.store.rollouts.active(line).map((r) => r.record.id);
    const record = createRollout(
      { id, line, version, strategy, targets, activeRolloutIds: active },
      this.now(),
    );
    return { record, apps: checked.apps };
  }

  /** Start a rollout: validated, stored (refused while another one of the line is active), then planned. */
  start(request: RolloutRequest, actor: string): StoredRollout {
    // Check, create and store in one synchronous step: two starts on one line cannot both pass.
    const id = `ro_${randomBytes(5).toString("hex")}`;
    const { record, apps } = this.build(request, id);
    const stored: StoredRollout = { record, apps, createdBy: actor };
    const event: RolloutEvent = {
      at: record.createdAt,
      kind: "rollout-state",
      message: `rollout of ${record.line}@${record.version} started by ${actor}: ${record.waves.length} wave(s), ${Object.keys(record.hosts).length} host(s)`,
    };
    this.deps.store.transaction(() => {
      this.deps.store.rollouts.insert(stored);
      this.deps.store.rollouts.appendEvents(id, [event]);
    });
    this.remember(stored);
    this.track(record);
    this.log.info({ rollout: id, image: request.image, actor }, "rollout started");
    this.poke(id);
    return stored;
  }

  /** A dry run: the waves with their hosts and an estimated timeline; nothing stored or sent. */
  plan(request: RolloutRequest): { record: RolloutRecord; timeline: Timeline } {
    const { record } = this.build(request, "ro_plan");
    const bytesByHost: Record<string, number> = {};
    const versions = this.deps.store.images.list(record.line);
    const target = this.deps.images.get(record.line, record.version);
    const artifacts = this.deps.store.artifacts.forImage(record.line, record.version);
    // Read once, not once per host: a rollout may cover thousands.
    const hosts = new Map(this.deps.store.hosts.list().map((h) => [h.id, h]));
    for (const hostId of Object.keys(record.hosts)) {
      const host = hosts.get(hostId);
      if (!host) continue;
      if (hostHasVersion(host.inventory, target)) {
        bytesByHost[hostId] = 0;
        continue;
      }
      const parent = pickParent(host.inventory, versions, record.version);
      const artifact = artifacts.find((a) => a.parentVersion === (parent ?? 0));
      // Without a made artifact, the image's size is the upper bound of what a host downloads.
      bytesByHost[hostId] = artifact?.sizeBytes ?? target.sizeBytes ?? 0;
    }
    const rate = this.rates.length > 0 ? this.rates.reduce((a, b) => a + b, 0) / this.rates.length : null;
    return { record, timeline: estimateTimeline(record, { bytesByHost, bytesPerSecond: rate }) };
  }

  /** pause | resume | promote | abort | rollback: the pure verb, stored, then planned. */
  verb(rolloutId: string, verb: RolloutVerb, actor: string, options: VerbOptions = {}): StoredRollout {
    const stored = this.get(rolloutId);
    const now = this.now();
    const before = stored.record;
    const record = ROLLOUT_VERBS[verb].apply(before, now, options);
    const event: RolloutEvent = {
      at: now,
      kind: "rollout-state",
      message: `${verb} by ${actor}: ${before.state} -> ${record.state}`,
    };
    this.deps.store.transaction(() => {
      this.deps.store.rollouts.save(record);
      this.deps.store.rollouts.appendEvents(rolloutId, [event]);
    });
    this.remember({ ...stored, record });
    this.track(record);
    this.log.info({ rollout: rolloutId, verb, actor, state: record.state }, "rollout verb");
    this.emit(rolloutId, { type: "event", event });
    this.emit(rolloutId, { type: "record", rollout: { ...stored, record } });
    this.poke(rolloutId);
    return { ...stored, record };
  }

  get(rolloutId: string): StoredRollout {
    const stored = this.load(rolloutId);
    if (!stored)
      throw new GildError("GILD_ROLLOUT_NOT_FOUND", `no rollout ${rolloutId}`, {
        hint: "list them with `gild rollout ls`",
      });
    return stored;
  }

  /** The rollout a verb without an id means: the only active one, else the newest. */
  defaultId(): string {
    const active = this.deps.store.rollouts.active();
    if (active.length === 1) return (active[0] as StoredRollout).record.id;
    if (active.length > 1) {
      throw new GildError("GILD_BAD_REQUEST", `${active.length} rollouts are active; say which`, {
        hint: `one of: ${active.map((r) => `${r.record.id} (${r.record.line}@${r.record.version})`).join(", ")}`,
      });
    }
    const newest = this.deps.store.rollouts.list(1)[0];
    if (!newest)
      throw new GildError("GILD_ROLLOUT_NOT_FOUND", "no rollouts yet", {
        hint: "start one with `gild rollout start <line>@<version>`",
      });
    return newest.record.id;
  }
}
