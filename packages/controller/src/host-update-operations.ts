import { randomBytes } from "node:crypto";
import {
  createHostUpdate,
  GildError,
  HOST_UPDATE_VERBS,
  type HostUpdateEvent,
  type HostUpdateRecord,
  type HostUpdateVerb,
  hasHostInFlight,
  isSettledHostUpdate,
  type Logger,
} from "@gild/core";
import type { HostUpdateExecutor } from "./host-update-executor.js";
import { checkHostUpdateRequest } from "./host-update-request.js";
import type { StoredHostUpdate } from "./store/host-updates-repo.js";
import type { Store } from "./store/store.js";

/** What every plan says: a host update cannot be taken back. */
export const NO_UNDO_NOTE =
  "there is no automatic un-upgrade: a failure stops the waves and pauses or fails the job; hosts keep what the command did";

/**
 * What operators do with host updates (the API's /v1/host-updates): start one, plan one without
 * starting it, apply a verb, read one. Each change is stored with its event, then handed to the executor.
 */
export class HostUpdateOperations {
  private readonly log: Logger;

  constructor(
    private readonly deps: { store: Store; executor: HostUpdateExecutor; log: Logger; now?: () => number },
  ) {
    this.log = deps.log.child({ component: "host-updates" });
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  get(jobId: string): StoredHostUpdate {
    return this.deps.executor.get(jobId);
  }

  settled(jobId: string): Promise<void> {
    return this.deps.executor.settled(jobId);
  }

  /** A checked request and the job it makes (refused where another active job covers a host). */
  private build(body: unknown, id: string): HostUpdateRecord {
    const checked = checkHostUpdateRequest(body, this.deps.store.hosts.list());
    const active = this.deps.store.hostUpdates
      .active()
      .map((j) => ({ id: j.record.id, hostIds: Object.keys(j.record.hosts) }));
    return createHostUpdate(
      {
        id,
        argv: checked.argv,
        strategy: checked.strategy,
        targets: checked.hosts.map((h) => ({ hostId: h.id, hostName: h.name })),
        active,
      },
      this.now(),
    );
  }

  /** Start a host update: checked, stored, then planned (which starts the canary). */
  start(body: unknown, actor: string): StoredHostUpdate {
    // Check, create and store in one synchronous step: two starts cannot both take a host.
    const id = `hu_${randomBytes(5).toString("hex")}`;
    const record = this.build(body, id);
    const stored: StoredHostUpdate = { record, createdBy: actor };
    const event: HostUpdateEvent = {
      at: record.createdAt,
      kind: "job-state",
      message: `host update started by ${actor}: ${JSON.stringify(record.argv)} on ${Object.keys(record.hosts).length} host(s) in ${record.waves.length} wave(s)`,
    };
    this.deps.store.transaction(() => {
      this.deps.store.hostUpdates.insert(stored);
      this.deps.store.hostUpdates.appendEvents(id, [event]);
    });
    this.log.info({ job: id, argv: record.argv, actor }, "host update started");
    this.deps.executor.changed(stored, [event]);
    return stored;
  }

  /** A dry run: the waves and their hosts; nothing stored or sent. */
  plan(body: unknown): HostUpdateRecord {
    return this.build(body, "hu_plan");
  }

  /** pause | resume | abort: the pure verb, stored, then planned. */
  verb(jobId: string, verb: HostUpdateVerb, actor: string): StoredHostUpdate {
    const stored = this.get(jobId);
    const now = this.now();
    const before = stored.record;
    const record = HOST_UPDATE_VERBS[verb].apply(before, now);
    const inFlight = hasHostInFlight(record) ? "; hosts already started finish their steps" : "";
    const event: HostUpdateEvent = {
      at: now,
      kind: "job-state",
      message: `${verb} by ${actor}: ${before.state} -> ${record.state}${inFlight}`,
    };
    this.deps.store.transaction(() => {
      this.deps.store.hostUpdates.save(record);
      this.deps.store.hostUpdates.appendEvents(jobId, [event]);
    });
    this.log.info({ job: jobId, verb, actor, state: record.state }, "host update verb");
    this.deps.executor.changed({ ...stored, record }, [event]);
    return { ...stored, record };
  }

  /** The job a command without an id means: the only one not settled, else the newest. */
  defaultId(): string {
    const active = this.deps.store.hostUpdates.active().filter((j) => !isSettledHostUpdate(j.record));
    if (active.length === 1) return (active[0] as StoredHostUpdate).record.id;
    if (active.length > 1)
      throw new GildError("GILD_BAD_REQUEST", `${active.length} host updates are active; say which`, {
        hint: `one of: ${active.map((j) => j.record.id).join(", ")}`,
      });
    const newest = this.deps.store.hostUpdates.list(1)[0];
    if (!newest)
      throw new GildError("GILD_HOST_UPDATE_NOT_FOUND", "no host updates yet", {
        hint: "start one with `gild host-update start --hosts ... --command ...`",
      });
    return newest.record.id;
  }
}
