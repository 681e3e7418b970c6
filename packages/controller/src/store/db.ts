import { openPostgres } from "./postgres-db.js";
import { openSqlite } from "./sqlite-db.js";

/** A value a statement binds: what both SQLite and PostgreSQL store for the store's columns. */
export type SqlValue = string | number | bigint | Buffer | null;

/** Parameters of one statement: positional (`?`), or one object for named ones (`@name`). */
export type SqlParams = SqlValue[] | [object];

/** A prepared statement, run to completion at once. */
export interface Statement {
  run(...params: SqlParams): { changes: number };
  get(...params: SqlParams): unknown;
  all(...params: SqlParams): unknown[];
}

/**
 * The store's database, SQLite (sqlite-db.ts) or PostgreSQL (postgres-db.ts): the repositories speak
 * to this alone, in the SQL both understand (`?` and `@name` parameters, `ON CONFLICT`, no JSON
 * functions), and every call is synchronous: a repository reads what it just wrote, in order.
 */
export interface Db {
  readonly kind: "sqlite" | "postgres";
  readonly inTransaction: boolean;
  prepare(sql: string): Statement;
  /** Run `sql` once per row of positional parameters, in order (PostgreSQL: in one round trip). */
  runMany(sql: string, rows: ReadonlyArray<readonly SqlValue[]>): void;
  /**
   * Run `fn` in one transaction (a savepoint when one is open). Not `durable`: the commit does not wait
   * for the disk; the next durable commit makes it durable too. Only for what agents report again.
   */
  transaction<T>(fn: () => T, durable?: boolean): T;
  /**
   * Write a consistent copy of the whole database to the file `path` (its directory made when missing)
   * while writes go on (SQLite's backup API). PostgreSQL refuses, and makes nothing: pg_dump backs it up.
   */
  backup(path: string): Promise<void>;
  close(): void;
}

/** Where the store lives: an SQLite file (the embedded default), or a PostgreSQL database. */
export type DatabaseLocation = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

/** A `database` setting: a postgres:// (or postgresql://) URL, else the path of an SQLite file. */
export function isPostgresUrl(database: string): boolean {
  return /^postgres(ql)?:\/\//.test(database);
}

/** Open (or create) the store's database and bring its schema up to date. */
export function openDatabase(location: DatabaseLocation): Db {
  return location.kind === "sqlite" ? openSqlite(location.path) : openPostgres(location.url);
}
