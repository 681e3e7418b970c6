import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import { GildError } from "@gild/core";
import type { Db, SqlParams, SqlValue, Statement } from "./db.js";
import type { WorkerData, WorkerReply, WorkerRequest } from "./postgres-worker.js";

/** TEXT compared byte by byte, as SQLite does: names order the same whatever the cluster's locale. */
const T = 'TEXT COLLATE "C"';

/** Who made a wave job (rollouts, host_updates) and when it was made, changed and finished. */
const JOB_CLOCKS = `created_by ${T},
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT`;

/** A wave job's event log (job-events.ts): the same columns for rollouts and host updates. */
const eventLog = (table: string, jobColumn: string, index: string) => `
  CREATE TABLE ${table} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ${jobColumn} ${T} NOT NULL,
    at BIGINT NOT NULL,
    kind ${T} NOT NULL,
    host_id ${T},
    wave BIGINT,
    message ${T} NOT NULL
  );
  CREATE INDEX ${index} ON ${table} (${jobColumn}, id);`;

/**
 * The schema in PostgreSQL, in migrations applied in order; gild_schema records how many ran. It is the
 * schema SQLite's migrations (sqlite-db.ts) arrive at, in PostgreSQL's types: BIGINT for every integer
 * (milliseconds do not fit in 32 bits), BYTEA for blobs, identity columns for event ids. Never edit a
 * shipped migration: append a new one, and the same change to SQLite's list.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE hosts (
    id ${T} PRIMARY KEY,
    name ${T} NOT NULL UNIQUE,
    labels ${T} NOT NULL DEFAULT '{}',
    credential_hash ${T} NOT NULL,
    state ${T} NOT NULL DEFAULT 'offline',
    last_seen BIGINT,
    joined_at BIGINT NOT NULL,
    agent_version ${T},
    kernel_version ${T},
    btrfs_progs_version ${T},
    max_stream_version BIGINT NOT NULL DEFAULT 1,
    facts ${T} NOT NULL DEFAULT '{}',
    inventory ${T},
    protocol_version BIGINT NOT NULL DEFAULT 1
  );
  CREATE TABLE join_tokens (
    id ${T} PRIMARY KEY,
    secret_hash ${T} NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_by ${T},
    used_at BIGINT,
    used_by ${T}
  );
  CREATE TABLE images (
    line ${T} NOT NULL,
    version BIGINT NOT NULL,
    uuid ${T} NOT NULL,
    status ${T} NOT NULL DEFAULT 'candidate',
    parent BIGINT,
    size_bytes BIGINT,
    origin ${T},
    created_by ${T},
    created_at BIGINT NOT NULL,
    kind ${T} NOT NULL DEFAULT 'os',
    PRIMARY KEY (line, version)
  );
  CREATE TABLE artifacts (
    id ${T} PRIMARY KEY,
    line ${T} NOT NULL,
    version BIGINT NOT NULL,
    parent_version BIGINT NOT NULL,
    stream_version BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 ${T} NOT NULL,
    manifest BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    created_at BIGINT NOT NULL
  );
  CREATE TABLE commands (
    id ${T} PRIMARY KEY,
    host_id ${T} NOT NULL,
    kind ${T} NOT NULL,
    payload BYTEA NOT NULL,
    state ${T} NOT NULL,
    error ${T},
    result ${T},
    rollout_id ${T},
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    body ${T}
  );
  CREATE INDEX commands_by_host_state ON commands (host_id, state);
  CREATE INDEX commands_by_job ON commands (rollout_id);
  CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor ${T} NOT NULL,
    method ${T} NOT NULL,
    path ${T} NOT NULL,
    status BIGINT NOT NULL,
    summary ${T}
  );
  CREATE INDEX audit_by_at ON audit (at);
  CREATE TABLE apps (
    name ${T} PRIMARY KEY,
    spec ${T} NOT NULL,
    created_by ${T},
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    image_version BIGINT,
    code_version BIGINT
  );
  CREATE TABLE rollouts (
    id ${T} PRIMARY KEY,
    line ${T} NOT NULL,
    version BIGINT NOT NULL,
    state ${T} NOT NULL,
    record ${T} NOT NULL,
    apps ${T},
    ${JOB_CLOCKS}
  );
  CREATE INDEX rollouts_by_line_state ON rollouts (line, state);
  ${eventLog("rollout_events", "rollout_id", "rollout_events_by_rollout")}
  CREATE TABLE rollout_hosts (
    rollout_id ${T} NOT NULL,
    host_id ${T} NOT NULL,
    wave BIGINT NOT NULL,
    position BIGINT NOT NULL,
    step ${T} NOT NULL,
    PRIMARY KEY (rollout_id, host_id)
  );
  CREATE TABLE host_updates (
    id ${T} PRIMARY KEY,
    state ${T} NOT NULL,
    settled BIGINT NOT NULL DEFAULT 0,
    record ${T} NOT NULL,
    ${JOB_CLOCKS}
  );
  CREATE INDEX host_updates_by_settled ON host_updates (settled, created_at);
  ${eventLog("host_update_events", "host_update_id", "host_update_events_by_job")}
  CREATE TABLE maintenance_windows (
    target ${T} PRIMARY KEY,
    spec ${T} NOT NULL,
    set_by ${T},
    set_at BIGINT NOT NULL
  );
  CREATE TABLE users (
    name ${T} PRIMARY KEY,
    role ${T} NOT NULL,
    token_hash ${T} NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by ${T},
    token_created_at BIGINT NOT NULL,
    expires_at BIGINT
  );
  CREATE TABLE sessions (
    id_hash ${T} PRIMARY KEY,
    actor ${T} NOT NULL,
    role ${T} NOT NULL,
    token_hash ${T} NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX sessions_by_actor ON sessions (actor);
  `,
];

/** The advisory lock a controller holds on its database: "gild" in ASCII. */
const LOCK_KEY = 0x67696c64;

type WorkerRequestBody = WorkerRequest extends infer R
  ? R extends WorkerRequest
    ? Omit<R, "id">
    : never
  : never;

/** How long the controller waits for PostgreSQL to answer one request before it gives up on it. */
const ANSWER_TIMEOUT_MS = 60_000;

/** A statement's SQL in PostgreSQL's terms: `$n` for each `?` or `@name`, and the names in order. */
interface Translated {
  /** The prepared statement's name on the connection (parsed once per connection). */
  name: string;
  text: string;
  /** For `@name` parameters: which property binds each `$n`; null for positional ones. */
  names: string[] | null;
}

/** Replace `?` and `@name` outside quotes by `$1`, `$2`, ... (one `$n` per distinct name). */
export function translatePlaceholders(sql: string): { text: string; names: string[] | null } {
  let text = "";
  let positional = 0;
  const names: string[] = [];
  let quote: string | null = null;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i] as string;
    if (quote !== null) {
      if (c === quote) quote = null;
      text += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      text += c;
    } else if (c === "?") {
      text += `$${++positional}`;
    } else if (c === "@" && /[A-Za-z_]/.test(sql[i + 1] ?? "")) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))?.[0] as string;
      let index = names.indexOf(name);
      if (index < 0) index = names.push(name) - 1;
      text += `$${index + 1}`;
      i += name.length;
    } else {
      text += c;
    }
  }
  if (positional > 0 && names.length > 0) throw new Error(`mixed ? and @name parameters: ${sql}`);
  return { text, names: names.length > 0 ? names : null };
}

/** Buffers cross the thread as Uint8Arrays: make them Buffers again, as SQLite's BLOBs are. */
function asBuffers(rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  for (const row of rows)
    for (const key in row) {
      const v = row[key];
      if (v instanceof Uint8Array && !Buffer.isBuffer(v))
        row[key] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
  return rows;
}

function unavailable(message: string, cause?: unknown): GildError {
  return new GildError("GILD_STORE_UNAVAILABLE", message, {
    hint: "check that PostgreSQL is running and reachable at the controller's `database` URL, and that it has disk space; work resumes once it answers",
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The store in PostgreSQL, synchronous like SQLite: each statement is posted to a worker thread
 * (postgres-worker.ts), which runs it on its connection, and this thread waits for the answer on a
 * shared flag (Atomics.wait). A statement costs a round trip to the server; the batched writes (one
 * transaction per event-loop turn) go as one request per statement kind (runMany).
 */
export class PostgresDb implements Db {
  readonly kind = "postgres";
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private readonly translated = new Map<string, Translated>();
  private readonly statements = new Map<string, Statement>();
  private nextId = 1;
  private depth = 0;
  private closed = false;

  constructor(url: string) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const data: WorkerData = { url, port: port2, flag: this.flag, lockKey: LOCK_KEY };
    this.worker = new Worker(new URL("./postgres-worker.js", import.meta.url), {
      workerData: data,
      transferList: [port2],
    });
    // The worker never keeps the controller alive on its own; close() ends it.
    this.worker.unref();
  }

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  /** Post one request to the worker and wait for its answer. */
  private call(
    request: WorkerRequestBody,
    timeoutMs = ANSWER_TIMEOUT_MS,
  ): { rows: Array<Record<string, unknown>>; rowCount: number } {
    if (this.closed) throw unavailable("the controller's database is closed");
    const id = this.nextId++;
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ ...request, id } as WorkerRequest);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw unavailable(`PostgreSQL did not answer within ${timeoutMs / 1000} s`);
      Atomics.wait(this.flag, 0, 0, left);
      Atomics.store(this.flag, 0, 0);
      // Answers to requests given up on (timed out) are skipped.
      for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
        const reply = m.message as WorkerReply;
        if (reply.id !== id) continue;
        if ("error" in reply) {
          const err = Object.assign(
            new Error(reply.error.message),
            reply.error.code ? { code: reply.error.code } : {},
          );
          if (reply.error.code === "GILD_STORE_BUSY")
            throw new GildError(
              "GILD_STORE_BUSY",
              "another gild controller is using this PostgreSQL database",
              {
                hint: "stop the other controller, or give this one its own database (`database` in its config)",
              },
            );
          throw err;
        }
        return { rows: asBuffers(reply.rows), rowCount: reply.rowCount };
      }
    }
  }

  private translate(sql: string): Translated {
    let t = this.translated.get(sql);
    if (t === undefined) {
      t = { ...translatePlaceholders(sql), name: `gild_${this.translated.size + 1}` };
      this.translated.set(sql, t);
    }
    return t;
  }

  private query(sql: string, params: SqlParams) {
    const t = this.translate(sql);
    let values: unknown[];
    if (t.names !== null) {
      const named = (params[0] ?? {}) as Record<string, unknown>;
      values = t.names.map((n) => named[n] ?? null);
    } else {
      values = (params as unknown[]).map((v) => v ?? null);
    }
    return this.call({ op: "query", name: t.name, text: t.text, values, inTransaction: this.depth > 0 });
  }

  /** SQL of the store's own (no parameters, possibly several statements), not prepared. */
  exec(text: string): void {
    this.call({ op: "query", name: null, text, values: [], inTransaction: this.depth > 0 });
  }

  prepare(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = {
        run: (...params) => ({ changes: this.query(sql, params).rowCount }),
        get: (...params) => this.query(sql, params).rows[0],
        all: (...params) => this.query(sql, params).rows,
      };
      this.statements.set(sql, statement);
    }
    return statement;
  }

  runMany(sql: string, rows: ReadonlyArray<readonly SqlValue[]>): void {
    if (rows.length === 0) return;
    const t = this.translate(sql);
    if (t.names !== null) throw new Error("runMany takes positional parameters");
    this.call({ op: "many", name: t.name, text: t.text, rows: rows.map((r) => r.map((v) => v ?? null)) });
  }

  transaction<T>(fn: () => T, durable = true): T {
    if (this.depth > 0) {
      const savepoint = `gild_sp_${this.depth}`;
      this.exec(`SAVEPOINT ${savepoint}`);
      this.depth++;
      try {
        const result = fn();
        this.exec(`RELEASE SAVEPOINT ${savepoint}`);
        return result;
      } catch (err) {
        this.exec(`ROLLBACK TO SAVEPOINT ${savepoint}; RELEASE SAVEPOINT ${savepoint}`);
        throw err;
      } finally {
        this.depth--;
      }
    }
    this.exec(durable ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit = off");
    this.depth = 1;
    try {
      const result = fn();
      this.exec("COMMIT");
      return result;
    } catch (err) {
      try {
        this.exec("ROLLBACK");
      } catch {
        // The connection is gone: the server rolled the transaction back itself.
      }
      throw err;
    } finally {
      this.depth = 0;
    }
  }

  /** Connect (and take the controller's lock): fails at once when PostgreSQL cannot be reached. */
  connect(): void {
    // The worker's start and node-postgres's own connect timeout (10 s) fit in this.
    this.call({ op: "open" }, 20_000);
  }

  /** Create or update the schema, under the controller's lock (taken when the connection opened). */
  migrate(): void {
    this.exec("CREATE TABLE IF NOT EXISTS gild_schema (version BIGINT NOT NULL)");
    const row = this.prepare("SELECT version FROM gild_schema").get() as { version: number } | undefined;
    if (row === undefined) this.exec("INSERT INTO gild_schema (version) VALUES (0)");
    const applied = row?.version ?? 0;
    if (applied > MIGRATIONS.length)
      throw new GildError(
        "GILD_STORE_UNAVAILABLE",
        `the database's schema is version ${applied}, newer than this controller knows (${MIGRATIONS.length})`,
        { hint: "run the controller release that wrote it, or a newer one" },
      );
    for (let i = applied; i < MIGRATIONS.length; i++) {
      this.transaction(() => {
        this.exec(MIGRATIONS[i] as string);
        this.prepare("UPDATE gild_schema SET version = ?").run(i + 1);
      });
    }
  }

  async backup(): Promise<void> {
    throw new GildError(
      "GILD_BAD_REQUEST",
      "the controller's store is PostgreSQL: gild backup copies an SQLite store only",
      { hint: "back the database up with pg_dump, as docs/deployment.md (Backups) shows" },
    );
  }

  close(): void {
    if (this.closed) return;
    try {
      this.call({ op: "close" });
    } catch {
      // Closing anyway.
    }
    this.closed = true;
    this.port.close();
    void this.worker.terminate();
  }
}

/** Connect to PostgreSQL at `url`, take the controller's lock, bring the schema up to date. */
export function openPostgres(url: string): PostgresDb {
  const db = new PostgresDb(url);
  try {
    db.connect();
    db.migrate();
  } catch (err) {
    db.close();
    if (err instanceof GildError) throw err;
    throw unavailable(`cannot open the PostgreSQL database: ${(err as Error).message}`, err);
  }
  return db;
}
