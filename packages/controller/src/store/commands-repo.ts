import type { SerializedError } from "@gild/core";
import { type Command, decodeLegacyCommand, modelFromJson, modelToJson } from "@gild/protocol";
import type { Db } from "./db.js";

export type CommandRowState = "pending" | "running" | "succeeded" | "failed";

/** A command for a host, stored before it is sent, so it survives restarts and is re-sent after reconnects. */
export interface CommandRecord {
  id: string;
  hostId: string;
  kind: string;
  /** The command as sent (whatever protocol version a host speaks, it is encoded at send time). */
  command: Command;
  state: CommandRowState;
  error: SerializedError | null;
  result: unknown;
  rolloutId: string | null;
  createdAt: number;
  updatedAt: number;
}

interface CommandRow {
  id: string;
  host_id: string;
  kind: string;
  payload: Buffer;
  body: string | null;
  state: string;
  error: string | null;
  result: string | null;
  rollout_id: string | null;
  created_at: number;
  updated_at: number;
}

const fromRow = (row: CommandRow): CommandRecord => ({
  id: row.id,
  hostId: row.host_id,
  kind: row.kind,
  // Rows from before protocol 2 have only their protocol-1 encoding (an empty one: a local failure).
  command:
    row.body !== null
      ? modelFromJson<Command>(row.body)
      : row.payload.length > 0
        ? decodeLegacyCommand(row.payload)
        : ({ commandId: row.id } as Command),
  state: row.state as CommandRowState,
  error: row.error === null ? null : (JSON.parse(row.error) as SerializedError),
  result: row.result === null ? null : (JSON.parse(row.result) as unknown),
  rolloutId: row.rollout_id,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export class CommandsRepo {
  constructor(private readonly db: Db) {}

  /** Insert unless a command with this id exists (ids are deterministic where re-issuing must be a no-op). */
  insertIfAbsent(c: {
    id: string;
    hostId: string;
    kind: string;
    /** null for a command that failed before it could be made (no body to send). */
    command: Command | null;
    rolloutId: string | null;
    now: number;
  }): boolean {
    return (
      this.db
        .prepare(
          `INSERT OR IGNORE INTO commands (id, host_id, kind, payload, body, state, rollout_id, created_at, updated_at)
           VALUES (?, ?, ?, x'', ?, 'pending', ?, ?, ?)`,
        )
        .run(
          c.id,
          c.hostId,
          c.kind,
          c.command === null ? null : modelToJson(c.command),
          c.rolloutId,
          c.now,
          c.now,
        ).changes === 1
    );
  }

  get(id: string): CommandRecord | undefined {
    const row = this.db.prepare("SELECT * FROM commands WHERE id = ?").get(id) as CommandRow | undefined;
    return row && fromRow(row);
  }

  /** Commands of a host that have no final result yet, oldest first: what is (re)sent on connect. */
  openForHost(hostId: string): CommandRecord[] {
    return (
      this.db
        .prepare(
          "SELECT * FROM commands WHERE host_id = ? AND state IN ('pending', 'running') ORDER BY created_at, id",
        )
        .all(hostId) as CommandRow[]
    ).map(fromRow);
  }

  forRollout(rolloutId: string): CommandRecord[] {
    return (
      this.db
        .prepare("SELECT * FROM commands WHERE rollout_id = ? ORDER BY created_at, id")
        .all(rolloutId) as CommandRow[]
    ).map(fromRow);
  }

  setRunning(id: string, now: number): void {
    this.db
      .prepare("UPDATE commands SET state = 'running', updated_at = ? WHERE id = ? AND state = 'pending'")
      .run(now, id);
  }

  /** Record the final result; false when it was already final (a replayed status). */
  finish(
    id: string,
    state: "succeeded" | "failed",
    result: unknown,
    error: SerializedError | null,
    now: number,
  ): boolean {
    return (
      this.db
        .prepare(
          "UPDATE commands SET state = ?, result = ?, error = ?, updated_at = ? WHERE id = ? AND state IN ('pending', 'running')",
        )
        .run(
          state,
          result === null ? null : JSON.stringify(result),
          error === null ? null : JSON.stringify(error),
          now,
          id,
        ).changes === 1
    );
  }

  /** Drop final results older than `before`: log reads after minutes, the rest after days (rollouts keep theirs). */
  pruneFinished(readLogsBefore: number, othersBefore: number): number {
    return this.db
      .prepare(
        `DELETE FROM commands WHERE state IN ('succeeded', 'failed') AND rollout_id IS NULL
           AND ((kind = 'readLogs' AND updated_at < ?) OR updated_at < ?)`,
      )
      .run(readLogsBefore, othersBefore).changes;
  }

  /**
   * Withdraw a job's (a rollout's or a host update's) commands of the given kinds that no host has taken yet (still pending), for
   * one host or all: they are marked failed with GILD_COMMAND_CANCELLED and never sent again. Returns their ids.
   */
  cancelPending(rolloutId: string, hostId: string | null, now: number, kinds: readonly string[]): string[] {
    const rows = (
      (hostId === null
        ? this.db
            .prepare("SELECT id, kind FROM commands WHERE rollout_id = ? AND state = 'pending'")
            .all(rolloutId)
        : this.db
            .prepare(
              "SELECT id, kind FROM commands WHERE rollout_id = ? AND host_id = ? AND state = 'pending'",
            )
            .all(rolloutId, hostId)) as Array<{ id: string; kind: string }>
    ).filter((row) => kinds.includes(row.kind));
    const error = JSON.stringify({
      code: "GILD_COMMAND_CANCELLED",
      message: "withdrawn by its job (a rollout or a host update) before the host took it",
    });
    const update = this.db.prepare(
      "UPDATE commands SET state = 'failed', error = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
    );
    for (const row of rows) update.run(error, now, row.id);
    return rows.map((r) => r.id);
  }

  deleteForHost(hostId: string): void {
    this.db.prepare("DELETE FROM commands WHERE host_id = ? AND state IN ('pending', 'running')").run(hostId);
  }
}
