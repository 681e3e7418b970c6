import {
  type HostStep,
  type RolloutEvent,
  type RolloutRecord,
  sameFields,
  TERMINAL_ROLLOUT_STATES,
} from "@gild/core";
import type { Db, SqlValue } from "./db.js";
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

interface HostRow {
  host_id: string;
  wave: number;
  step: string;
}

/**
 * The record without its hosts and waves: what the rollouts row keeps (rollout_hosts has the rest),
 * with the number of waves (one may be empty, and an empty wave has no rows).
 */
type RecordRest = Omit<RolloutRecord, "hosts" | "waves"> & { waveCount: number };

function rest(record: RolloutRecord): string {
  const { hosts: _hosts, waves, ...small } = record;
  return JSON.stringify({ ...small, waveCount: waves.length } satisfies RecordRest);
}

const TERMINAL_SQL = TERMINAL_ROLLOUT_STATES.map((s) => `'${s}'`).join(", ");

/**
 * Rollout records (every transition stored before its commands go out) and their event log. A record
 * is two parts: its small rest in `rollouts.record`, and one row per host in `rollout_hosts` (its
 * step, wave and place in the wave). A step writes the rest and only the hosts whose step changed.
 */
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
        rest(r),
        rollout.apps === null ? null : JSON.stringify(rollout.apps),
        rollout.createdBy,
        r.createdAt,
        r.updatedAt,
        r.finishedAt,
      );
    const rows: SqlValue[][] = [];
    r.waves.forEach((wave, w) => {
      wave.forEach((hostId, position) => {
        const step = r.hosts[hostId];
        if (step) rows.push([r.id, hostId, w, position, JSON.stringify(step)]);
      });
    });
    this.db.runMany(
      "INSERT INTO rollout_hosts (rollout_id, host_id, wave, position, step) VALUES (?, ?, ?, ?, ?)",
      rows,
    );
  }

  /**
   * Store a new record of a rollout: its rest, and the host steps that differ from `previous` (the
   * record as last stored; without it, every host). Waves never change after the start. Returns how
   * many host rows were written.
   */
  save(record: RolloutRecord, previous?: RolloutRecord): number {
    this.db
      .prepare("UPDATE rollouts SET state = ?, record = ?, updated_at = ?, finished_at = ? WHERE id = ?")
      .run(record.state, rest(record), record.updatedAt, record.finishedAt, record.id);
    const rows: SqlValue[][] = [];
    for (const hostId in record.hosts) {
      const step = record.hosts[hostId] as HostStep;
      // Only the steps the planner changed (field by field: core's sameFields).
      if (previous && sameFields(step, previous.hosts[hostId])) continue;
      rows.push([JSON.stringify(step), record.id, hostId]);
    }
    this.db.runMany("UPDATE rollout_hosts SET step = ? WHERE rollout_id = ? AND host_id = ?", rows);
    return rows.length;
  }

  get(id: string): StoredRollout | undefined {
    const row = this.db.prepare("SELECT * FROM rollouts WHERE id = ?").get(id) as RolloutRow | undefined;
    return row && this.fromRow(row);
  }

  /** Ids of the rollouts not in a terminal state, oldest first, without reading their hosts. */
  activeIds(line?: string): string[] {
    const rows =
      line === undefined
        ? this.db
            .prepare(`SELECT id FROM rollouts WHERE state NOT IN (${TERMINAL_SQL}) ORDER BY created_at`)
            .all()
        : this.db
            .prepare(
              `SELECT id FROM rollouts WHERE line = ? AND state NOT IN (${TERMINAL_SQL}) ORDER BY created_at`,
            )
            .all(line);
    return (rows as Array<{ id: string }>).map((r) => r.id);
  }

  /** Rollouts not in a terminal state (what a restarted controller resumes). */
  active(line?: string): StoredRollout[] {
    return this.activeIds(line).flatMap((id) => {
      const stored = this.get(id);
      return stored ? [stored] : [];
    });
  }

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

  /** Newest first. */
  list(limit = 50): StoredRollout[] {
    return (
      this.db.prepare("SELECT * FROM rollouts ORDER BY created_at DESC LIMIT ?").all(limit) as RolloutRow[]
    ).map((row) => this.fromRow(row));
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

  /** The whole record again: the rest, with its hosts and waves from rollout_hosts. */
  private fromRow(row: RolloutRow): StoredRollout {
    const { waveCount, ...small } = JSON.parse(row.record) as RecordRest;
    const rows = this.db
      .prepare("SELECT host_id, wave, step FROM rollout_hosts WHERE rollout_id = ? ORDER BY wave, position")
      .all(row.id) as HostRow[];
    const hosts: Record<string, HostStep> = {};
    const waves: string[][] = Array.from({ length: waveCount }, () => []);
    for (const h of rows) {
      hosts[h.host_id] = JSON.parse(h.step) as HostStep;
      (waves[h.wave] as string[]).push(h.host_id);
    }
    return {
      record: { ...small, hosts, waves },
      apps: row.apps === null ? null : (JSON.parse(row.apps) as string[]),
      createdBy: row.created_by,
    };
  }
}
