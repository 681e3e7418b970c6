import { randomBytes } from "node:crypto";
import {
  createRollout,
  estimateTimeline,
  GildError,
  type Logger,
  ROLLOUT_VERBS,
  type RolloutEvent,
  type RolloutRecord,
  type RolloutTarget,
  type RolloutVerb,
  type Timeline,
  type VerbOptions,
} from "@gild/core";
import type { AppService } from "./app-service.js";
import { hostHasVersion, type ImageService, pickParent } from "./image-service.js";
import { windowsByHost } from "./maintenance-windows.js";
import type { RolloutExecutor } from "./rollout-executor.js";
import type { RolloutFeed } from "./rollout-feed.js";
import { appsInScope, versionOnLine } from "./rollout-observer.js";
import { checkRolloutRequest, type RolloutRequest } from "./rollout-request.js";
import type { StoredRollout } from "./store/rollouts-repo.js";
import type { Store } from "./store/store.js";

/**
 * What operators do with rollouts (the API's /v1/rollouts): start one, plan one without starting it,
 * apply a verb, read one. Each change is stored with its event, then handed to the executor's loop.
 */
export class RolloutOperations {
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      store: Store;
      images: ImageService;
      apps: AppService;
      executor: RolloutExecutor;
      log: Logger;
      now?: () => number;
    },
  ) {
    this.log = deps.log.child({ component: "rollouts" });
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Live views and progress. */
  get feed(): RolloutFeed {
    return this.deps.executor.feed;
  }

  /** The stored rollout (GILD_ROLLOUT_NOT_FOUND when there is none). */
  get(rolloutId: string): StoredRollout {
    return this.deps.executor.get(rolloutId);
  }

  /** Wait until the rollout's pending planning steps are done. */
  settled(rolloutId: string): Promise<void> {
    return this.deps.executor.settled(rolloutId);
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
          apps: apps.map((a) => ({ name: a.name, version: versionOnLine(a, line) ?? 0 })),
        });
    }
    const active = this.deps.store.rollouts.activeIds(line);
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
    this.log.info({ rollout: id, image: request.image, actor }, "rollout started");
    this.deps.executor.changed(stored, []);
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
    const windows = Object.fromEntries(windowsByHost(hosts.values(), this.deps.store.windows.list()));
    return {
      record,
      timeline: estimateTimeline(record, {
        bytesByHost,
        bytesPerSecond: this.feed.meanRate(),
        windows,
        startAt: this.now(),
      }),
    };
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
      this.deps.store.rollouts.save(record, before);
      this.deps.store.rollouts.appendEvents(rolloutId, [event]);
    });
    this.log.info({ rollout: rolloutId, verb, actor, state: record.state }, "rollout verb");
    this.deps.executor.changed({ ...stored, record }, [event]);
    return { ...stored, record };
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
