/**
 * The thread that talks to PostgreSQL for postgres-db.ts. The store is synchronous (a repository reads
 * what it just wrote, in order, and keeps its caches in step with the database), so the controller's
 * thread posts each request here and blocks on a shared flag until the answer is on its port. This
 * thread holds one connection (node-postgres), keeps the controller's advisory lock on it, and
 * connects again after the connection was lost, outside a transaction.
 */
import { type MessagePort, workerData } from "node:worker_threads";
import pg from "pg";
import { batchTexts } from "./postgres-batch.js";

export type WorkerRequest =
  | { id: number; op: "open" }
  | { id: number; op: "query"; name: string | null; text: string; values: unknown[]; inTransaction: boolean }
  | { id: number; op: "many"; name: string; text: string; rows: unknown[][] }
  | { id: number; op: "close" };

export type WorkerReply =
  | { id: number; rows: Array<Record<string, unknown>>; rowCount: number }
  | { id: number; error: { message: string; code?: string } };

export interface WorkerData {
  url: string;
  port: MessagePort;
  flag: Int32Array;
  /** The advisory lock a controller holds while it uses the database (one controller per database). */
  lockKey: number;
}

const { url, port, flag, lockKey } = workerData as WorkerData;

// BIGINT (int8) as a number, like SQLite's integers: the store's are milliseconds and counts, far
// below 2^53.
pg.types.setTypeParser(20, (text) => Number(text));

let client: pg.Client | undefined;
/** The connection broke (an error event): the next request outside a transaction connects again. */
let broken = false;

async function connect(): Promise<pg.Client> {
  const next = new pg.Client({
    connectionString: url,
    // A statement that hangs (a lock, a full disk) fails instead of holding the controller.
    statement_timeout: 30_000,
    connectionTimeoutMillis: 10_000,
    application_name: "gild-controller",
  });
  next.on("error", () => {
    broken = true;
  });
  await next.connect();
  const locked = await next.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [
    lockKey,
  ]);
  if (locked.rows[0]?.locked !== true) {
    await next.end();
    const err = new Error("another gild controller is using this database") as Error & { code: string };
    err.code = "GILD_STORE_BUSY";
    throw err;
  }
  broken = false;
  return next;
}

async function current(inTransaction: boolean): Promise<pg.Client> {
  if (client !== undefined && !broken) return client;
  if (inTransaction)
    throw Object.assign(new Error("the connection to PostgreSQL was lost"), { code: "08006" });
  client?.end().catch(() => undefined);
  client = undefined;
  client = await connect();
  return client;
}

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  switch (request.op) {
    case "open":
      await current(false);
      return { id: request.id, rows: [], rowCount: 0 };
    case "query": {
      const db = await current(request.inTransaction);
      const result = await db.query(
        request.name === null
          ? { text: request.text, values: request.values }
          : { name: request.name, text: request.text, values: request.values },
      );
      // A multi-statement text (BEGIN; SET LOCAL ...) answers with one result per statement.
      const last = Array.isArray(result) ? result[result.length - 1] : result;
      return { id: request.id, rows: last?.rows ?? [], rowCount: last?.rowCount ?? 0 };
    }
    case "many": {
      const db = await current(true);
      let rowCount = 0;
      for (const text of batchTexts(request.text, request.rows)) {
        const result = (await db.query(text)) as pg.QueryResult | pg.QueryResult[];
        for (const r of Array.isArray(result) ? result : [result]) rowCount += r.rowCount ?? 0;
      }
      return { id: request.id, rows: [], rowCount };
    }
    case "close":
      await client?.end();
      client = undefined;
      return { id: request.id, rows: [], rowCount: 0 };
  }
}

/**
 * An error as the controller's thread gets it. One without a SQLSTATE (a refused or lost connection,
 * a closed client) gets 08006, connection_failure, so that the store reads it as PostgreSQL being
 * unreachable (store-errors.ts).
 */
function replyError(id: number, err: unknown): WorkerReply {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "GILD_STORE_BUSY" || (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)))
    return { id, error: { message, code } };
  return { id, error: { message, code: "08006" } };
}

port.on("message", (request: WorkerRequest) => {
  handle(request)
    .catch((err: unknown) => replyError(request.id, err))
    .then((reply) => {
      port.postMessage(reply);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    });
});
