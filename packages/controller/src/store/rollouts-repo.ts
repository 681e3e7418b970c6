import { type RolloutEvent, type RolloutRecord, TERMINAL_ROLLOUT_STATES } from "@gild/core";
import type { Db } from "./db.js";

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

interface EventRow {
  id: number;
  rollout_id: string;
  at: number;
  kind: string;
  host_id: string | null;
  wave: number | null;
  message: string;
}

const fromRow = (row: RolloutRow): StoredRollout => ({
  record: JSON.parse(row.record) as RolloutRecord,
  apps: row.apps === null ? null : (JSON.parse(row.apps) as string[]),
  createdBy: row.created_by,
});

const TERMINAL_SQL = TERMINAL_ROLLOUT_STATES.map((s) => `'${s}'`).join(", ");

/** Rollout records (every transition stored before its commands go out) and their event log. */
export class RolloutsRepo {
  constructor(private readonly db: Db) {}

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
  list(limit = 50): StoredRollout[] {
    return (
      this.db.prepare("SELECT * FROM rollouts ORDER BY created_at DESC LIMIT ?").all(limit) as RolloutRow[]
    ).map(fromRow);
  }

  /** Append planner events to the rollout's log (in the same transaction as the record they explain). */
  appendEvents(rolloutId: string, events: readonly RolloutEvent[]): void {
    const insert = this.db.prepare(
      "INSERT INTO rollout_events (rollout_id, at, kind, host_id, wave, message) VALUES (?, ?, ?, ?, ?, ?)",
    );
    for (const e of events) insert.run(rolloutId, e.at, e.kind, e.hostId ?? null, e.wave ?? null, e.message);
  }

  events(rolloutId: string, afterId = 0, limit = 1000): StoredEvent[] {
    return (
      this.db
        .prepare("SELECT * FROM rollout_events WHERE rollout_id = ? AND id > ? ORDER BY id LIMIT ?")
        .all(rolloutId, afterId, limit) as EventRow[]
    ).map((row) => ({
      id: row.id,
      rolloutId: row.rollout_id,
      at: row.at,
      // Written from a RolloutEvent only (appendEvents).
      kind: row.kind as RolloutEvent["kind"],
      ...(row.host_id === null ? {} : { hostId: row.host_id }),
      ...(row.wave === null ? {} : { wave: row.wave }),
      message: row.message,
    }));
  }
}
