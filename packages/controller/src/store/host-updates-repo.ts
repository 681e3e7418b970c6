import { type HostUpdateEvent, type HostUpdateRecord, isSettledHostUpdate } from "@gild/core";
import type { Db } from "./db.js";
import { JobEventLog, type StoredJobEvent } from "./job-events.js";

/** A stored host update: the planner's record plus who started it. */
export interface StoredHostUpdate {
  record: HostUpdateRecord;
  createdBy: string | null;
}

export type StoredHostUpdateEvent = StoredJobEvent<HostUpdateEvent>;

interface HostUpdateRow {
  record: string;
  created_by: string | null;
}

const fromRow = (row: HostUpdateRow): StoredHostUpdate => ({
  record: JSON.parse(row.record) as HostUpdateRecord,
  createdBy: row.created_by,
});

/** Host-update jobs (every transition stored before its commands go out) and their event log. */
export class HostUpdatesRepo {
  private readonly log: JobEventLog<HostUpdateEvent>;

  constructor(private readonly db: Db) {
    this.log = new JobEventLog(db, "host_update_events", "host_update_id");
  }

  insert(job: StoredHostUpdate): void {
    const r = job.record;
    this.db
      .prepare(
        `INSERT INTO host_updates (id, state, settled, record, created_by, created_at, updated_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.state,
        isSettledHostUpdate(r) ? 1 : 0,
        JSON.stringify(r),
        job.createdBy,
        r.createdAt,
        r.updatedAt,
        r.finishedAt,
      );
  }

  save(record: HostUpdateRecord): void {
    this.db
      .prepare(
        "UPDATE host_updates SET state = ?, settled = ?, record = ?, updated_at = ?, finished_at = ? WHERE id = ?",
      )
      .run(
        record.state,
        isSettledHostUpdate(record) ? 1 : 0,
        JSON.stringify(record),
        record.updatedAt,
        record.finishedAt,
        record.id,
      );
  }

  get(id: string): StoredHostUpdate | undefined {
    const row = this.db.prepare("SELECT record, created_by FROM host_updates WHERE id = ?").get(id) as
      | HostUpdateRow
      | undefined;
    return row && fromRow(row);
  }

  /** Jobs not settled, oldest first (what a restarted controller resumes). */
  active(): StoredHostUpdate[] {
    return (
      this.db
        .prepare("SELECT record, created_by FROM host_updates WHERE settled = 0 ORDER BY created_at")
        .all() as HostUpdateRow[]
    ).map(fromRow);
  }

  /** Newest first. */
  /** How many there are in each state, for the metrics. */
  countsByState(): Map<string, number> {
    const rows = this.db
      .prepare("SELECT state AS k, COUNT(*) AS n FROM host_updates GROUP BY state")
      .all() as Array<{
      k: string;
      n: number;
    }>;
    return new Map(rows.map((r) => [r.k, r.n]));
  }

  list(limit = 50): StoredHostUpdate[] {
    return (
      this.db
        .prepare("SELECT record, created_by FROM host_updates ORDER BY created_at DESC LIMIT ?")
        .all(limit) as HostUpdateRow[]
    ).map(fromRow);
  }

  /** Append planner events (in the same transaction as the record they explain). */
  appendEvents(jobId: string, events: readonly HostUpdateEvent[]): void {
    this.log.append(jobId, events);
  }

  events(jobId: string, afterId = 0, limit = 1000): StoredHostUpdateEvent[] {
    return this.log.list(jobId, afterId, limit);
  }
}
