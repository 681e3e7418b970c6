import { GildError } from "@gild/core";

// SQLite's codes for a write the disk refused: full (SQLITE_FULL), failing (SQLITE_IOERR and its
// extended codes, e.g. SQLITE_IOERR_WRITE), or a filesystem remounted read-only (SQLITE_READONLY*).
const UNWRITABLE = /^SQLITE_(FULL|IOERR|READONLY)(_|$)/;

/**
 * A write the database could not make for want of a usable disk, as GILD_STORE_UNAVAILABLE; undefined
 * for any other error. SQLite rolls the transaction back whole, so nothing was half-written.
 */
export function storeFailure(err: unknown): GildError | undefined {
  if (err instanceof GildError) return err.code === "GILD_STORE_UNAVAILABLE" ? err : undefined;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !UNWRITABLE.test(code)) return undefined;
  return new GildError(
    "GILD_STORE_UNAVAILABLE",
    `the controller cannot write its database (${code}): ${(err as Error).message}`,
    {
      hint: "free space on the controller's data disk (df -h on its data dir); nothing was half-written, and work resumes once it can write",
      cause: err,
    },
  );
}
