import {
  GildError,
  type HostUpdateEvent,
  isSettledHostUpdate,
  type Logger,
  planHostUpdate,
} from "@gild/core";
import type { AgentHub } from "./agent-hub.js";
import type { CommandService } from "./command-service.js";
import { failureClusterChange, hostUpdateFailureClusters } from "./failure-attributes.js";
import { HostUpdateDispatcher } from "./host-update-dispatcher.js";
import { observeHostUpdate } from "./host-update-observer.js";
import { JobFeed } from "./job-feed.js";
import { JobLoop } from "./job-loop.js";
import { windowsByHost } from "./maintenance-windows.js";
import type { ControllerMetrics } from "./metrics.js";
import { named } from "./rollout-executor.js";
import type { StoredHostUpdate } from "./store/host-updates-repo.js";

/** What a live view of a host update receives. */
export type HostUpdateUpdate =
  | { type: "record"; job: StoredHostUpdate }
  | { type: "event"; event: HostUpdateEvent };

import type { Store } from "./store/store.js";

/**
 * The loop that runs host updates (docs/architecture.md, Host updates), on the rollouts' JobLoop:
 * observe (the job's commands, links, inventories), plan (core's pure planHostUpdate), store the new
 * record and its events in one transaction, then send what the stored record calls for. A restarted
 * controller resumes every job that is not settled from the store.
 */
export class HostUpdateExecutor {
  private readonly loop: JobLoop;
  private readonly dispatcher: HostUpdateDispatcher;
  private readonly log: Logger;
  /** Who watches which job live. */
  readonly feed = new JobFeed<HostUpdateUpdate>();

  constructor(
    private readonly deps: {
      store: Store;
      /** Wave durations; none in tests that build an executor alone. */
      metrics?: ControllerMetrics;
      hub: AgentHub;
      commands: CommandService;
      log: Logger;
      now?: () => number;
    },
  ) {
    this.log = deps.log.child({ component: "host-updates" });
    this.loop = new JobLoop({
      log: this.log,
      noun: "host update",
      now: () => this.now(),
      step: (jobId) => this.evaluate(jobId),
      idPrefix: "hu_",
      commands: deps.commands,
      hub: deps.hub,
    });
    this.dispatcher = new HostUpdateDispatcher({ ...deps, log: this.log, now: () => this.now() });
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Resume every job that is not settled (at controller start). */
  resumeAll(): void {
    for (const stored of this.deps.store.hostUpdates.active()) {
      this.log.info({ job: stored.record.id, state: stored.record.state }, "resuming host update");
      this.changed(stored);
    }
  }

  close(): void {
    this.loop.close();
  }

  /** An inventory changed or a host came or went: plan again the jobs that cover it. */
  pokeHost(hostId: string): void {
    this.loop.pokeHost(hostId);
  }

  /** A job changed outside the loop (started, or a verb), already stored with its events: plan it. */
  changed(stored: StoredHostUpdate, events: readonly HostUpdateEvent[] = []): void {
    const { record } = stored;
    this.loop.track(record.id, Object.keys(record.hosts), !isSettledHostUpdate(record));
    this.publish(stored, events);
    this.loop.poke(record.id);
  }

  private publish(stored: StoredHostUpdate, events: readonly HostUpdateEvent[]): void {
    for (const event of events) this.feed.emit(stored.record.id, { type: "event", event });
    this.feed.emit(stored.record.id, { type: "record", job: stored });
  }

  /** Wait until the job's pending planning steps are done. */
  settled(jobId: string): Promise<void> {
    return this.loop.settled(jobId);
  }

  get(jobId: string): StoredHostUpdate {
    const stored = this.deps.store.hostUpdates.get(jobId);
    if (!stored)
      throw new GildError("GILD_HOST_UPDATE_NOT_FOUND", `no host update ${jobId}`, {
        hint: "list them with `gild host-update status`",
      });
    return stored;
  }

  /** One planning step; resolves with the job's next wake, or null. */
  private async evaluate(jobId: string): Promise<number | null> {
    const stored = this.deps.store.hostUpdates.get(jobId);
    if (!stored) return null;
    const before = stored.record;
    const known = this.deps.store.hosts.byIdNow();
    const rows = this.deps.store.commands.forRollout(jobId);
    if (isSettledHostUpdate(before)) {
      this.loop.track(jobId, Object.keys(before.hosts), false);
      this.deps.metrics?.jobEnded("host-update", jobId);
      return null;
    }
    const windows = windowsByHost(known.values(), this.deps.store.windows.list());
    const observation = observeHostUpdate(before, { hub: this.deps.hub, known, rows, windows });
    const plan = planHostUpdate(before, observation, this.now());
    const record = plan.job;
    const events: HostUpdateEvent[] = plan.events.map((e) => named(e, known));
    const cluster = failureClusterChange(before, record, hostUpdateFailureClusters, known, this.now());
    if (cluster) events.push(cluster);
    if (record !== before || events.length > 0) {
      // The transition and its events land together, before any command goes out.
      this.deps.store.transaction(() => {
        this.deps.store.hostUpdates.save(record);
        this.deps.store.hostUpdates.appendEvents(jobId, events);
      });
      this.deps.metrics?.jobEvents("host-update", jobId, events);
      if (isSettledHostUpdate(record)) this.deps.metrics?.jobEnded("host-update", jobId);
      for (const event of events)
        this.log.info({ job: jobId, kind: event.kind, host: event.hostId, wave: event.wave }, event.message);
      this.publish({ ...stored, record }, events);
    }
    if (isSettledHostUpdate(record)) this.loop.track(jobId, Object.keys(record.hosts), false);
    this.dispatcher.withdraw(record);
    this.dispatcher.dispatch(record, known, rows);
    return plan.nextWakeAt;
  }
}
