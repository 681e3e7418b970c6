import { mkdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { Db, SqlValue, Statement } from "./db.js";

/**
 * Schema migrations, applied in order; PRAGMA user_version records how many ran. Never edit a shipped
 * migration: append a new one.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL DEFAULT '{}',
    credential_hash TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'offline',
    last_seen INTEGER,
    joined_at INTEGER NOT NULL,
    agent_version TEXT,
    kernel_version TEXT,
    btrfs_progs_version TEXT,
    max_stream_version INTEGER NOT NULL DEFAULT 1,
    facts TEXT NOT NULL DEFAULT '{}',
    inventory TEXT
  );
  CREATE TABLE join_tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_by TEXT,
    used_at INTEGER,
    used_by TEXT
  );
  CREATE TABLE images (
    line TEXT NOT NULL,
    version INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'candidate',
    parent INTEGER,
    size_bytes INTEGER,
    origin TEXT,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (line, version)
  );
  CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    line TEXT NOT NULL,
    version INTEGER NOT NULL,
    parent_version INTEGER NOT NULL,
    stream_version INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    manifest BLOB NOT NULL,
    signature BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    result TEXT,
    rollout_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX commands_by_host_state ON commands (host_id, state);
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    summary TEXT
  );
  `,
  `
  CREATE TABLE apps (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  `
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    line TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    apps TEXT,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE INDEX rollouts_by_line_state ON rollouts (line, state);
  CREATE TABLE rollout_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    host_id TEXT,
    wave INTEGER,
    message TEXT NOT NULL
  );
  CREATE INDEX rollout_events_by_rollout ON rollout_events (rollout_id, id);
  `,
  // Protocol 2: a host's protocol version, and commands kept as the model's JSON (the payload column
  // held their protocol-1 encoding; store.ts converts old rows once).
  `
  ALTER TABLE hosts ADD COLUMN protocol_version INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE commands ADD COLUMN body TEXT;
  `,
  // App code: a line is an os image or an app's code; an app remembers the versions it was last
  // deployed or rolled out at (what a host added to it gets).
  `
  ALTER TABLE images ADD COLUMN kind TEXT NOT NULL DEFAULT 'os';
  ALTER TABLE apps ADD COLUMN image_version INTEGER;
  ALTER TABLE apps ADD COLUMN code_version INTEGER;
  `,
  // Host updates (docs/architecture.md, Host updates). A job is active until settled: a failed or
  // aborted one still records the hosts it had started. Its commands are in commands, with the job's
  // id in rollout_id (the column holds the id of the job a command belongs to).
  `
  CREATE TABLE host_updates (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE INDEX host_updates_by_settled ON host_updates (settled, created_at);
  CREATE TABLE host_update_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_update_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    host_id TEXT,
    wave INTEGER,
    message TEXT NOT NULL
  );
  CREATE INDEX host_update_events_by_job ON host_update_events (host_update_id, id);
  `,
  // Maintenance windows (issue 13): per host name or per label selector ("role=web"), the spec as the
  // operator wrote it (validated before it is stored; core parses it again on every read).
  `
  CREATE TABLE maintenance_windows (
    target TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    set_by TEXT,
    set_at INTEGER NOT NULL
  );
  `,
  // Named operators with roles (issue 15): only the sha256 of each token is kept, looked up by it.
  `
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    token_created_at INTEGER NOT NULL,
    expires_at INTEGER
  );
  `,
  // Dashboard sessions (issue 15): the sha256 of the cookie's random id, never the id or the user's
  // token. token_hash is the hash of the token the session was opened with: a session holds only
  // while its user still has that token (removed or rotated: it ends).
  `
  CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX sessions_by_actor ON sessions (actor);
  `,
  // A rollout's host steps as rows (issue 16): a planning step writes the hosts it changed and the
  // record's small rest, instead of the whole record (2.4 MiB at 10,000 hosts). `wave` and `position`
  // keep RolloutRecord.waves, so the record column holds neither hosts nor waves from here on (only
  // waveCount: a wave may be empty).
  `
  CREATE TABLE rollout_hosts (
    rollout_id TEXT NOT NULL,
    host_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    position INTEGER NOT NULL,
    step TEXT NOT NULL,
    PRIMARY KEY (rollout_id, host_id)
  ) WITHOUT ROWID;
  INSERT INTO rollout_hosts (rollout_id, host_id, wave, position, step)
    SELECT r.id, h.value, CAST(w.key AS INTEGER), CAST(h.key AS INTEGER),
           json_extract(r.record, '$.hosts."' || h.value || '"')
    FROM rollouts r, json_each(r.record, '$.waves') w, json_each(w.value) h
    WHERE json_extract(r.record, '$.hosts."' || h.value || '"') IS NOT NULL;
  UPDATE rollouts SET record = json_remove(
    json_set(record, '$.waveCount', json_array_length(record, '$.waves')), '$.hosts', '$.waves');
  `,
];

/** Open (or create) the controller's SQLite database: WAL, foreign keys, migrations applied. */
export function openSqlite(path: string): SqliteDb {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  // Exclusive, set before the first read: SQLite keeps the WAL index in this process's memory instead
  // of mapping gild.db-shm. On a full btrfs, a write to a mapped page that needs a new block kills the
  // process with SIGBUS (copy-on-write: every rewrite needs one), where a write() only fails with
  // SQLITE_FULL, which the controller answers with GILD_STORE_UNAVAILABLE and outlives. The price: no
  // other process opens the database while the controller runs (backups: docs/deployment.md).
  db.pragma("locking_mode = EXCLUSIVE");
  db.pragma("journal_mode = WAL");
  // WAL + FULL: a transaction is on disk when its commit returns (the WAL is fsynced at each commit),
  // so a power loss cannot take back a rollout transition whose command already went out (NORMAL could
  // lose the last commits; docs/deployment.md, "What a power loss can lose").
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  const applied = db.pragma("user_version", { simple: true }) as number;
  for (let i = applied; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i] as string);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
  return new SqliteDb(db);
}

/** The store's database in one SQLite file (better-sqlite3: synchronous, in this process). */
export class SqliteDb implements Db {
  readonly kind = "sqlite";
  /**
   * Each SQL text compiled once. The repositories prepare their statements where they use them;
   * without this, compiling took more time than running them while a rollout over 1,000 hosts was
   * busy. Every statement is run to completion at once (no iterate()), so sharing one is safe.
   */
  private readonly compiled = new Map<string, Database.Statement>();

  constructor(readonly raw: Database.Database) {}

  get inTransaction(): boolean {
    return this.raw.inTransaction;
  }

  prepare(sql: string): Statement {
    let statement = this.compiled.get(sql);
    if (statement === undefined) {
      statement = this.raw.prepare(sql);
      this.compiled.set(sql, statement);
    }
    return statement as unknown as Statement;
  }

  runMany(sql: string, rows: ReadonlyArray<readonly SqlValue[]>): void {
    const statement = this.prepare(sql);
    for (const row of rows) statement.run(...row);
  }

  transaction<T>(fn: () => T, durable = true): T {
    // Nested: a savepoint of the transaction that is open.
    if (this.raw.inTransaction) return this.raw.transaction(fn)();
    // Not durable: committed without its own fsync of the WAL (synchronous=NORMAL); the next durable
    // commit makes it durable too (the WAL is one sequence).
    if (!durable) this.raw.pragma("synchronous = NORMAL");
    try {
      return this.raw.transaction(fn)();
    } finally {
      if (!durable) this.raw.pragma("synchronous = FULL");
    }
  }

  async backup(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // Through this connection: in exclusive locking mode no other one may read the database.
    await this.raw.backup(path);
  }

  close(): void {
    this.raw.close();
  }
}
