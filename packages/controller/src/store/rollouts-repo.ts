import { type RolloutEvent, type RolloutRecord, TERMINAL_ROLLOUT_STATES } from "@gild/core";
import type { Db } from "./db.js";
import { JobEventLog } from "./job-events.js";

/** A stored rollout: the planner's record plus who started it and which apps it covers. */
export interface StoredRollout {
  record: RolloutRecord;
  /** App names the rollout is limited to (--apps), or null for every app of the line. */
  apps: string[] | null;
  createdBy: string | null;
}

export interface StoredEvent extends RolloutEvent {
  id: number;
  rolloutId: string;
}

interface RolloutRow {
  id: string;
  record: string;
  apps: string | null;
  created_by: string | null;
}

const fromRow = (row: RolloutRow): StoredRollout => ({
  record: JSON.parse(row.record) as RolloutRecord,
  apps: row.apps === null ? null : (JSON.parse(row.apps) as string[]),
  createdBy: row.created_by,
});

const TERMINAL_SQL = TERMINAL_ROLLOUT_STATES.map((s) => `'${s}'`).join(", ");

/** Rollout records (every transition stored before its commands go out) and their event log. */
export class RolloutsRepo {
  private readonly log: JobEventLog<RolloutEvent>;

  constructor(private readonly db: Db) {
    this.log = new JobEventLog(db, "rollout_events", "rollout_id");
  }

  insert(rollout: StoredRollout): void {
    const r = rollout.record;
    this.db
      .prepare(
        `INSERT INTO rollouts (id, line, version, state, record, apps, created_by, created_at, updated_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.line,
        r.version,
        r.state,
        JSON.stringify(r),
        rollout.apps === null ? null : JSON.stringify(rollout.apps),
        rollout.createdBy,
        r.createdAt,
        r.updatedAt,
        r.finishedAt,
      );
  }

  save(record: RolloutRecord): void {
    this.db
      .prepare("UPDATE rollouts SET state = ?, record = ?, updated_at = ?, finished_at = ? WHERE id = ?")
      .run(record.state, JSON.stringify(record), record.updatedAt, record.finishedAt, record.id);
  }

  get(id: string): StoredRollout | undefined {
    const row = this.db.prepare("SELECT * FROM rollouts WHERE id = ?").get(id) as RolloutRow | undefined;
    return row && fromRow(row);
  }

  /** Rollouts not in a terminal state (what a restarted controller resumes). */
  active(line?: string): StoredRollout[] {
    const rows =
      line === undefined
        ? this.db
            .prepare(`SELECT * FROM rollouts WHERE state NOT IN (${TERMINAL_SQL}) ORDER BY created_at`)
            .all()
        : this.db
            .prepare(
              `SELECT * FROM rollouts WHERE line = ? AND state NOT IN (${TERMINAL_SQL}) ORDER BY created_at`,
            )
            .all(line);
    return (rows as RolloutRow[]).map(fromRow);
  }

  /** Newest first. */
  /** How many there are in each state, for the metrics. */
  countsByState(): Map<string, number> {
    const rows = this.db
      .prepare("SELECT state AS k, COUNT(*) AS n FROM rollouts GROUP BY state")
      .all() as Array<{
      k: string;
      n: number;
    }>;
    return new Map(rows.map((r) => [r.k, r.n]));
  }

  list(limit = 50): StoredRollout[] {
    return (
      this.db.prepare("SELECT * FROM rollouts ORDER BY created_at DESC LIMIT ?").all(limit) as RolloutRow[]
    ).map(fromRow);
  }

  /** Append planner events to the rollout's log (in the same transaction as the record they explain). */
  appendEvents(rolloutId: string, events: readonly RolloutEvent[]): void {
    this.log.append(rolloutId, events);
  }

  events(rolloutId: string, afterId = 0, limit = 1000): StoredEvent[] {
    return this.log
      .list(rolloutId, afterId, limit)
      .map(({ jobId, ...event }) => ({ ...event, rolloutId: jobId }));
  }
}
