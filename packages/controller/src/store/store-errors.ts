import { GildError } from "@gild/core";

// SQLite's codes for a write the disk refused: full (SQLITE_FULL), failing (SQLITE_IOERR and its
// extended codes, e.g. SQLITE_IOERR_WRITE), or a filesystem remounted read-only (SQLITE_READONLY*).
const UNWRITABLE = /^SQLITE_(FULL|IOERR|READONLY)(_|$)/;
// PostgreSQL's SQLSTATEs for a server that cannot take the write: connection exceptions (08: refused,
// lost; postgres-worker.ts gives 08006 to errors that have no SQLSTATE), insufficient resources (53: a
// full disk, out of memory), system errors (58: I/O), operator intervention (57P: shut down, starting),
// and a read-only transaction (25006: a standby).
const POSTGRES_UNAVAILABLE = /^(08|53|58)[0-9A-Z]{3}$|^57P[0-9A-Z]{2}$|^25006$/;

/**
 * A write the database could not make for want of a usable disk, as GILD_STORE_UNAVAILABLE; undefined
 * for any other error. SQLite and PostgreSQL roll the transaction back whole, so nothing was
 * half-written.
 */
export function storeFailure(err: unknown): GildError | undefined {
  if (err instanceof GildError) return err.code === "GILD_STORE_UNAVAILABLE" ? err : undefined;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return undefined;
  if (POSTGRES_UNAVAILABLE.test(code))
    return new GildError(
      "GILD_STORE_UNAVAILABLE",
      `the controller cannot reach or write its PostgreSQL database (${code}): ${(err as Error).message}`,
      {
        hint: "check that PostgreSQL is running, reachable at the controller's `database` URL, and has disk space; nothing was half-written, and work resumes once it answers",
        cause: err,
      },
    );
  if (!UNWRITABLE.test(code)) return undefined;
  return new GildError(
    "GILD_STORE_UNAVAILABLE",
    `the controller cannot write its database (${code}): ${(err as Error).message}`,
    {
      hint: "free space on the controller's data disk (df -h on its data dir); nothing was half-written, and work resumes once it can write",
      cause: err,
    },
  );
}
