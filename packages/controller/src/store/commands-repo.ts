import type { SerializedError } from "@gild/core";
import { type Command, decodeLegacyCommand, modelFromJson, modelToJson } from "@gild/protocol";
import type { Db, SqlValue } from "./db.js";
import type { TakeScope, WriteBatch } from "./write-batch.js";

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
  /** Read without payload and body (they are read when the command is asked for). */
  lazy?: boolean;
}

/** A stored command's body as the model (rows from before protocol 2 have only their protocol-1 encoding). */
function commandOf(row: CommandRow): Command {
  if (row.body !== null) return modelFromJson<Command>(row.body);
  // An empty encoding: a local failure, never sent.
  return row.payload.length > 0 ? decodeLegacyCommand(row.payload) : ({ commandId: row.id } as Command);
}

const EMPTY = Buffer.alloc(0);

/** How many jobs' commands CommandsRepo keeps in memory (the active ones, and a few more). */
const KEPT_JOBS = 8;

/** How a record gets its command: decoded from its row, or read from the database when asked for. */
const LOAD = Symbol("load");

/** A stored record: its command comes from `[LOAD]` (kept by every copy made with withChanges). */
type LoadedRecord = CommandRecord & { readonly [LOAD]: () => Command };

/**
 * A record whose `command` is `load()`'s. Always the same shape (one hidden class for every record a
 * planning step reads), with `command` an own getter, so a spread still copies it.
 */
function recordOf(fields: Omit<CommandRecord, "command">, load: () => Command): CommandRecord {
  return {
    id: fields.id,
    hostId: fields.hostId,
    kind: fields.kind,
    get command(): Command {
      return load();
    },
    state: fields.state,
    error: fields.error,
    result: fields.result,
    rolloutId: fields.rolloutId,
    createdAt: fields.createdAt,
    updatedAt: fields.updatedAt,
    [LOAD]: load,
  } as LoadedRecord;
}

function fromRow(row: CommandRow, db?: Db): CommandRecord {
  let command: Command | undefined;
  // Decoded when asked for: a planning step reads every command of a rollout (20,000 at 10,000
  // hosts) for their states, and sends none of them.
  const load = (): Command => {
    if (command !== undefined) return command;
    if (!(row.lazy && db)) {
      command = commandOf(row);
      return command;
    }
    // A row read without its body (a job's, kept in memory) reads it now, and does not keep it: a
    // wave's pulls would each hold their signed manifest for as long as the job is kept.
    const full = db.prepare("SELECT payload, body FROM commands WHERE id = ?").get(row.id) as
      | Pick<CommandRow, "payload" | "body">
      | undefined;
    return commandOf(full ? { ...row, ...full } : row);
  };
  return recordOf(
    {
      id: row.id,
      hostId: row.host_id,
      kind: row.kind,
      state: row.state as CommandRowState,
      error: row.error === null ? null : (JSON.parse(row.error) as SerializedError),
      result: row.result === null ? null : (JSON.parse(row.result) as unknown),
      rolloutId: row.rollout_id,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    },
    load,
  );
}

/**
 * The record with some fields changed, its command loaded as the record's. Not a spread: a spread
 * calls the lazy `command` getter of a row read without its body, so every status of a wave's
 * commands would read and decode its body (a pull's holds its whole signed manifest) and keep it in
 * memory with the job's commands. Nor a copy of its property descriptors: at 10,000 hosts that took
 * 0.6 s of a rollout's 15 s of CPU, and left every record in the slow dictionary mode.
 */
function withChanges(
  record: CommandRecord,
  changes: Partial<Pick<CommandRecord, "state" | "error" | "result" | "updatedAt">>,
): CommandRecord {
  return recordOf(
    {
      id: record.id,
      hostId: record.hostId,
      kind: record.kind,
      state: changes.state ?? record.state,
      error: "error" in changes ? (changes.error ?? null) : record.error,
      result: "result" in changes ? changes.result : record.result,
      rolloutId: record.rolloutId,
      createdAt: record.createdAt,
      updatedAt: changes.updatedAt ?? record.updatedAt,
    },
    // Every record of this repository is made by recordOf.
    (record as LoadedRecord)[LOAD],
  );
}

/** A command's row as it waits in the batch: the whole record, and its body's JSON when it is new. */
interface WaitingCommand {
  record: CommandRecord;
  /** The body to insert (a new command; null for one that failed before it could be made); undefined for an update. */
  body?: string | null;
  /** What waits for the new command to be on disk (its send). */
  onStored?: () => void;
}

/**
 * New commands one flush of a turn writes at most; the rest wait for the next turns. The step that
 * starts a wave of 9,000 hosts (with the next wave's prefetches) issues 10,000 at once: written in one
 * transaction, the first of them left only after all were on disk (about a second at 10,000 hosts).
 */
export const NEW_COMMANDS_PER_FLUSH = 500;

/** A new command that may wait for a later turn's flush behind the others: an image pull. */
const isDeferrable = (record: CommandRecord) => record.kind === "pullImage";

const byCreation = (a: CommandRecord, b: CommandRecord) =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Commands for hosts. New commands and their statuses wait in memory for the store's batch
 * (write-batch.ts), which writes them once per event-loop turn; every read here sees them meanwhile.
 */
export class CommandsRepo {
  /** Commands written since the last flush, by id, as they are now. */
  private waiting = new Map<string, WaitingCommand>();
  /**
   * The commands of the jobs (rollouts, host updates) read lately, by job id, then command id, in the
   * order they were made: read once, then kept current by every write here (only this repository
   * writes commands). A planning step reads all of its job's, 20,000 at 10,000 hosts, on every step.
   */
  private readonly jobs = new Map<string, Map<string, CommandRecord>>();

  constructor(
    private readonly db: Db,
    private readonly batch: WriteBatch,
  ) {
    batch.register<Map<string, WaitingCommand>>({
      take: (scope) => this.take(scope),
      write: (taken) => this.write(taken),
      restore: (taken) => {
        const restored = new Map<string, WaitingCommand>();
        for (const [id, older] of taken) {
          const newer = this.waiting.get(id);
          if (newer === undefined) restored.set(id, older);
          // The newer state was read back from the insert that rolled back: it is new all the same.
          else if (newer.body === undefined && older.body !== undefined)
            restored.set(id, { ...newer, body: older.body, onStored: older.onStored });
        }
        // Back in front of what came later, in the order they were made.
        for (const [id, newer] of this.waiting) if (!restored.has(id)) restored.set(id, newer);
        this.waiting = restored;
      },
      committed: (taken) => {
        for (const { onStored } of taken.values()) onStored?.();
      },
      awaitsCommit: () => {
        for (const { onStored } of this.waiting.values()) if (onStored) return true;
        return false;
      },
    });
  }

  /**
   * What waits, for the batch (TakeScope).
   * - The flush of a turn takes every state change but only NEW_COMMANDS_PER_FLUSH new commands:
   *   those that are not image pulls first, then pulls, each in the order they were made; the rest
   *   are flushed in the turns after (reads see them meanwhile). A pull is most often a prefetch for a
   *   later wave, and a switch is what a wave waits for: at 10,000 hosts the 9,000 prefetches issued
   *   as a wave began went out 500 a turn, and the wave's own switches, made as its hosts' pulls
   *   ended, waited behind all of them (4.9 s to its first switch).
   * - Any other transaction takes everything but new pulls. A planning step's transaction wrote the
   *   thousands waiting (0.4 to 0.6 s at 10,000 hosts, with no report read meanwhile). A pull may be
   *   committed after a later write without harm: it is not sent before it is stored, nothing refers
   *   to it until then, and a crash before that loses a command never sent, as a crash before any
   *   turn's flush does (a job issues it again, under the same id).
   * - The last transaction, as the store closes, takes everything.
   */
  private take(scope: TakeScope): Map<string, WaitingCommand> {
    const taken = this.waiting;
    this.waiting = new Map();
    if (scope === "all") return taken;
    if (scope === "transaction") {
      for (const [id, waiting] of taken) {
        if (waiting.body === undefined || !isDeferrable(waiting.record)) continue;
        this.waiting.set(id, waiting);
        taken.delete(id);
      }
      if (this.waiting.size > 0) this.batch.schedule();
      return taken;
    }
    let urgent = 0;
    for (const waiting of taken.values()) {
      if (waiting.body !== undefined && !isDeferrable(waiting.record)) urgent++;
    }
    let roomForUrgent = NEW_COMMANDS_PER_FLUSH;
    let roomForPulls = Math.max(0, NEW_COMMANDS_PER_FLUSH - urgent);
    for (const [id, waiting] of taken) {
      if (waiting.body === undefined) continue;
      const deferrable = isDeferrable(waiting.record);
      if (deferrable ? roomForPulls > 0 : roomForUrgent > 0) {
        if (deferrable) roomForPulls--;
        else roomForUrgent--;
        continue;
      }
      this.waiting.set(id, waiting);
      taken.delete(id);
    }
    if (this.waiting.size > 0) this.batch.schedule();
    return taken;
  }

  /** Is this a new command not yet on disk (its send waits for the batch)? */
  unstored(id: string): boolean {
    return this.waiting.get(id)?.body !== undefined;
  }

  private write(taken: ReadonlyMap<string, WaitingCommand>): void {
    // An upsert: the insert for a new command, the state for one the database has.
    const rows: SqlValue[][] = [];
    for (const { record: c, body } of taken.values()) {
      rows.push([
        c.id,
        c.hostId,
        c.kind,
        EMPTY,
        body ?? null,
        c.state,
        c.error === null ? null : JSON.stringify(c.error),
        c.result === null ? null : JSON.stringify(c.result),
        c.rolloutId,
        c.createdAt,
        c.updatedAt,
      ]);
    }
    this.db.runMany(
      `INSERT INTO commands (id, host_id, kind, payload, body, state, error, result, rollout_id, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, error = excluded.error,
         result = excluded.result, updated_at = excluded.updated_at`,
      rows,
    );
  }

  /** Keep a command's new state until the batch writes it. */
  private hold(record: CommandRecord, body?: string | null, onStored?: () => void): void {
    const before = this.waiting.get(record.id);
    this.waiting.set(
      record.id,
      body !== undefined
        ? { record, body, onStored }
        : { record, body: before?.body, onStored: before?.onStored },
    );
    if (record.rolloutId !== null) this.jobs.get(record.rolloutId)?.set(record.id, record);
    this.batch.schedule();
  }

  /** A job's commands, read once and kept (the few jobs read last). */
  private jobCommands(jobId: string): Map<string, CommandRecord> {
    let commands = this.jobs.get(jobId);
    if (commands === undefined) {
      // Without their bodies: a step looks at states and results; a body is read when asked for.
      const rows = this.db
        .prepare(
          `SELECT id, host_id, kind, state, error, result, rollout_id, created_at, updated_at
           FROM commands WHERE rollout_id = ? ORDER BY created_at, id`,
        )
        .all(jobId) as CommandRow[];
      const records = this.merged(
        rows.map((row) => ({ ...row, payload: EMPTY, body: null, lazy: true })),
        (c) => c.rolloutId === jobId,
      );
      commands = new Map(records.map((c) => [c.id, c]));
      this.jobs.set(jobId, commands);
      if (this.jobs.size > KEPT_JOBS) this.jobs.delete(this.jobs.keys().next().value as string);
    }
    return commands;
  }

  /** Rows read from the database with what waits put over them, in the order of creation. */
  private merged(rows: CommandRow[], keep: (c: CommandRecord) => boolean): CommandRecord[] {
    if (this.waiting.size === 0) return rows.map((row) => fromRow(row, this.db)).filter(keep);
    const out = new Map<string, CommandRecord>();
    for (const row of rows) out.set(row.id, this.waiting.get(row.id)?.record ?? fromRow(row, this.db));
    for (const { record } of this.waiting.values()) if (keep(record)) out.set(record.id, record);
    return [...out.values()].filter(keep).sort(byCreation);
  }

  /**
   * Insert unless a command with this id exists (ids are deterministic where re-issuing must be a
   * no-op). It waits for the batch: `onStored` (its send) runs once it is committed.
   */
  insertIfAbsent(
    c: {
      id: string;
      hostId: string;
      kind: string;
      /** null for a command that failed before it could be made (no body to send). */
      command: Command | null;
      rolloutId: string | null;
      now: number;
    },
    onStored?: () => void,
  ): boolean {
    if (this.get(c.id) !== undefined) return false;
    const command = c.command ?? ({ commandId: c.id } as Command);
    this.hold(
      recordOf(
        {
          id: c.id,
          hostId: c.hostId,
          kind: c.kind,
          state: "pending",
          error: null,
          result: null,
          rolloutId: c.rolloutId,
          createdAt: c.now,
          updatedAt: c.now,
        },
        () => command,
      ),
      c.command === null ? null : modelToJson(c.command),
      onStored,
    );
    return true;
  }

  get(id: string): CommandRecord | undefined {
    const waiting = this.waiting.get(id);
    if (waiting) return waiting.record;
    // A job's command ids begin with the job's id (`<rollout>:<host>:switch:<app>`). A job kept in
    // memory has every command of it there (read whole, then current with every write): one that is
    // not there does not exist, without asking the database (a wave's 10,000 new pulls each asked).
    const job = id.indexOf(":") > 0 ? this.jobs.get(id.slice(0, id.indexOf(":"))) : undefined;
    if (job) return job.get(id);
    const row = this.db.prepare("SELECT * FROM commands WHERE id = ?").get(id) as CommandRow | undefined;
    return row && fromRow(row);
  }

  /** Commands of a host that have no final result yet, oldest first: what is (re)sent on connect. */
  openForHost(hostId: string): CommandRecord[] {
    const rows = this.db
      .prepare(
        "SELECT * FROM commands WHERE host_id = ? AND state IN ('pending', 'running') ORDER BY created_at, id",
      )
      .all(hostId) as CommandRow[];
    return this.merged(rows, (c) => c.hostId === hostId && (c.state === "pending" || c.state === "running"));
  }

  /** A job's commands (a rollout's, a host update's), in the order they were made. */
  forRollout(rolloutId: string): CommandRecord[] {
    return [...this.jobCommands(rolloutId).values()];
  }

  setRunning(id: string, now: number): void {
    const current = this.get(id);
    if (current?.state === "pending") this.hold(withChanges(current, { state: "running", updatedAt: now }));
  }

  /** Record the final result; false when it was already final (a replayed status). */
  finish(
    id: string,
    state: "succeeded" | "failed",
    result: unknown,
    error: SerializedError | null,
    now: number,
  ): boolean {
    const current = this.get(id);
    if (current === undefined || (current.state !== "pending" && current.state !== "running")) return false;
    // Kept as JSON would give it back: what the batch writes and what a read after it returns agree.
    const stored = result === null ? null : (JSON.parse(JSON.stringify(result)) as unknown);
    this.hold(withChanges(current, { state, result: stored, error, updatedAt: now }));
    return true;
  }

  /** Drop final results older than `before`: log reads after minutes, the rest after days (rollouts keep theirs). */
  pruneFinished(readLogsBefore: number, othersBefore: number): number {
    this.batch.flush();
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
    const rows =
      hostId === null
        ? this.db.prepare("SELECT * FROM commands WHERE rollout_id = ? AND state = 'pending'").all(rolloutId)
        : this.db
            .prepare("SELECT * FROM commands WHERE rollout_id = ? AND host_id = ? AND state = 'pending'")
            .all(rolloutId, hostId);
    const pending = this.merged(
      rows as CommandRow[],
      (c) =>
        c.rolloutId === rolloutId &&
        (hostId === null || c.hostId === hostId) &&
        c.state === "pending" &&
        kinds.includes(c.kind),
    );
    const error: SerializedError = {
      code: "GILD_COMMAND_CANCELLED",
      message: "withdrawn by its job (a rollout or a host update) before the host took it",
    };
    for (const c of pending) this.hold(withChanges(c, { state: "failed", error, updatedAt: now }));
    return pending.map((c) => c.id);
  }

  deleteForHost(hostId: string): void {
    const open = (c: CommandRecord) =>
      c.hostId === hostId && (c.state === "pending" || c.state === "running");
    for (const [id, { record }] of this.waiting) if (open(record)) this.waiting.delete(id);
    for (const commands of this.jobs.values())
      for (const [id, record] of commands) if (open(record)) commands.delete(id);
    this.db.prepare("DELETE FROM commands WHERE host_id = ? AND state IN ('pending', 'running')").run(hostId);
  }
}
