import type { WaveJobEvent } from "@gild/core";
import type { Db } from "./db.js";

/** A stored event of a wave job, with its row id (for reading on from it) and its job. */
export type StoredJobEvent<E extends WaveJobEvent<string>> = E & { id: number; jobId: string };

interface EventRow {
  id: number;
  job_id: string;
  at: number;
  kind: string;
  host_id: string | null;
  wave: number | null;
  message: string;
}

/**
 * The event log of one kind of wave job (rollout_events, host_update_events): appended in the
 * transaction of the record the events explain, read in order.
 */
export class JobEventLog<E extends WaveJobEvent<string>> {
  constructor(
    private readonly db: Db,
    private readonly table: "rollout_events" | "host_update_events",
    private readonly jobColumn: "rollout_id" | "host_update_id",
  ) {}

  append(jobId: string, events: readonly E[]): void {
    this.db.runMany(
      `INSERT INTO ${this.table} (${this.jobColumn}, at, kind, host_id, wave, message) VALUES (?, ?, ?, ?, ?, ?)`,
      events.map((e) => [jobId, e.at, e.kind, e.hostId ?? null, e.wave ?? null, e.message]),
    );
  }

  list(jobId: string, afterId = 0, limit = 1000): Array<StoredJobEvent<E>> {
    const rows = this.db
      .prepare(
        `SELECT id, ${this.jobColumn} AS job_id, at, kind, host_id, wave, message FROM ${this.table}
         WHERE ${this.jobColumn} = ? AND id > ? ORDER BY id LIMIT ?`,
      )
      .all(jobId, afterId, limit) as EventRow[];
    return rows.map(
      (row) =>
        ({
          id: row.id,
          jobId: row.job_id,
          at: row.at,
          // Written from an event of this kind only (append).
          kind: row.kind,
          ...(row.host_id === null ? {} : { hostId: row.host_id }),
          ...(row.wave === null ? {} : { wave: row.wave }),
          message: row.message,
        }) as StoredJobEvent<E>,
    );
  }
}
