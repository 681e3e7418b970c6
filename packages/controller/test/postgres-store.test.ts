import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "@gild/controller";
import { GildError } from "@gild/core";
import { startTestPostgres, type TestPostgres } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { batchTexts } from "../src/store/postgres-batch.js";
import { translatePlaceholders } from "../src/store/postgres-db.js";
import { storeFailure } from "../src/store/store-errors.js";
import { createTestDatabase, type TestDatabase, Undo } from "./support.js";

const HOST = "h_00000000000000a1";

describe("SQL for PostgreSQL", () => {
  it("numbers ? parameters, names @ parameters once each, and leaves quoted text alone", () => {
    expect(translatePlaceholders("UPDATE t SET a = ?, b = '?' WHERE c = ?")).toEqual({
      text: "UPDATE t SET a = $1, b = '?' WHERE c = $2",
      names: null,
    });
    expect(translatePlaceholders("UPDATE t SET a = @name, b = @id WHERE c = @name")).toEqual({
      text: "UPDATE t SET a = $1, b = $2 WHERE c = $1",
      names: ["name", "id"],
    });
    expect(translatePlaceholders(`SELECT '@x', "a?b" FROM t WHERE x = @x`)).toEqual({
      text: `SELECT '@x', "a?b" FROM t WHERE x = $1`,
      names: ["x"],
    });
    expect(() => translatePlaceholders("SELECT ? , @x")).toThrow(/mixed/);
  });
});

describe("batches for PostgreSQL", () => {
  it("writes an INSERT's rows as one VALUES list, an UPDATE's as one UPDATE ... FROM VALUES", () => {
    expect(
      batchTexts("INSERT INTO t (a, b, c) VALUES ($1, 'x', $2) ON CONFLICT (a) DO NOTHING", [
        ["k1", 1],
        ["k2", null],
      ]),
    ).toEqual([
      "INSERT INTO t (a, b, c) VALUES ('k1', 'x', 1),\n('k2', 'x', NULL) ON CONFLICT (a) DO NOTHING",
    ]);
    const [update] = batchTexts("UPDATE t SET s = $1 WHERE r = $2 AND h = $3", [
      ["it's", "r1", "h1"],
      ["b", "r1", "h2"],
    ]);
    expect(update?.replace(/\s+/g, " ")).toBe(
      "UPDATE t AS t SET s = v.p1 FROM (VALUES ('it''s', 'r1', 'h1'), ('b', 'r1', 'h2')) AS v(p1, p2, p3) WHERE t.r = v.p2 AND t.h = v.p3",
    );
    // A NULL has no type in a VALUES list: statements, one text.
    expect(
      batchTexts("UPDATE t SET s = $1 WHERE r = $2", [
        [null, "r1"],
        ["b", "r2"],
      ]),
    ).toEqual(["UPDATE t SET s = NULL WHERE r = 'r1';\nUPDATE t SET s = 'b' WHERE r = 'r2'"]);
    expect(
      batchTexts(
        "DELETE FROM t WHERE a = $1",
        Array.from({ length: 501 }, (_, i) => [i]),
      ),
    ).toHaveLength(2);
  });
});

describeWith(["postgres"], "the store in PostgreSQL", () => {
  let server: TestPostgres;
  let dir: string;
  let database: TestDatabase;
  const opened: Store[] = [];
  const open = () => {
    const store = Store.open(database.location);
    opened.push(store);
    return store;
  };

  beforeAll(() => {
    server = startTestPostgres();
  });
  afterAll(() => {
    server?.destroy();
  });
  const undo = new Undo();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "gild-postgres-store-"));
    undo.push(() => rm(dir, { recursive: true, force: true }));
    database = await createTestDatabase(dir, server.url);
    undo.push(() => database.drop());
    undo.push(() => {
      for (const store of opened.splice(0)) store.close();
    });
  });
  afterEach(() => undo.run());

  it("admits one controller per database, and the next once the first closed", () => {
    const first = open();
    first.hosts.insert({
      id: HOST,
      name: "web-1",
      labels: { role: "web" },
      credentialHash: "x",
      joinedAt: 1,
    });
    let refused: unknown;
    try {
      open();
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(GildError);
    expect((refused as GildError).code).toBe("GILD_STORE_BUSY");
    first.close();
    opened.splice(opened.indexOf(first), 1);
    const next = open();
    expect(next.hosts.byName("web-1")?.labels).toEqual({ role: "web" });
  });

  it("reports a stopped server as GILD_STORE_UNAVAILABLE, keeps batched writes, and writes them once it is back", async () => {
    const store = open();
    store.hosts.insert({ id: HOST, name: "web-1", labels: {}, credentialHash: "x", joinedAt: 1 });
    // A report's write waits for the end of this turn; the server stops before it.
    const batchFailure = new Promise<unknown>((resolve) => {
      store.onBatchFailure = (err) => resolve(err);
    });
    expect(
      store.commands.insertIfAbsent({
        id: "c1",
        hostId: HOST,
        kind: "pullImage",
        command: { commandId: "c1" } as never,
        rolloutId: null,
        now: 3,
      }),
    ).toBe(true);
    const written = new Promise<void>((resolve) => store.batch.afterCommit(resolve));
    server.pause();
    try {
      // An explicit write fails whole, as one the disk refused.
      let failed: unknown;
      try {
        store.transaction(() => {
          store.apps.insert({ name: "blog" } as never, "admin", 2);
        });
      } catch (err) {
        failed = err;
      }
      expect(storeFailure(failed)?.code).toBe("GILD_STORE_UNAVAILABLE");
      // The batched write waits, is retried, and what waits for it runs only once it is written.
      expect(storeFailure(await batchFailure)?.code).toBe("GILD_STORE_UNAVAILABLE");
      server.resume();
      await written;
    } finally {
      // The server runs again for the other tests whatever happened here.
      try {
        server.resume();
      } catch {
        // Already running.
      }
    }
    const row = store.db.prepare("SELECT state FROM commands WHERE id = ?").get("c1") as { state: string };
    expect(row.state).toBe("pending");
    expect(store.apps.get("blog")).toBeUndefined();
    store.transaction(() => {
      store.apps.insert({ name: "blog" } as never, "admin", 4);
    });
    expect(store.apps.get("blog")?.createdBy).toBe("admin");
  });

  it("stores what SQLite stores: integers past 32 bits, blobs, and names in byte order", () => {
    const store = open();
    const joinedAt = Date.UTC(2026, 11, 5);
    for (const name of ["web-10", "Web-2", "web-1"])
      store.hosts.insert({ id: `h_${name}`, name, labels: {}, credentialHash: "x", joinedAt });
    expect(store.hosts.list().map((h) => h.name)).toEqual(["Web-2", "web-1", "web-10"]);
    expect(store.hosts.byName("web-1")?.joinedAt).toBe(joinedAt);
    const manifest = Buffer.from([0, 1, 2, 255]);
    store.artifacts.insert({
      id: "ar_1",
      line: "php",
      version: 2,
      parentVersion: 1,
      streamVersion: 2,
      sizeBytes: 6 * 2 ** 32,
      sha256: "ab",
      manifest,
      signature: Buffer.from("sig"),
      createdAt: joinedAt,
    });
    const artifact = store.artifacts.byId("ar_1");
    expect(Buffer.isBuffer(artifact?.manifest)).toBe(true);
    expect(artifact?.manifest.equals(manifest)).toBe(true);
    expect(artifact?.sizeBytes).toBe(6 * 2 ** 32);
  });

  it("writes many rows at once with every value as it was: quotes, backslashes, $1, bytes, null", () => {
    const store = open();
    const texts = ["it's", "back\\slash\\", "$1 and ?", "line\nbreak", "ünïcödé ✓", "", "E'x'"];
    store.db.runMany(
      "INSERT INTO maintenance_windows (target, spec, set_by, set_at) VALUES (?, ?, ?, ?)",
      texts.map((text, i) => [`t${i}`, text, i % 2 === 0 ? null : text, 2 ** 40 + i]),
    );
    const rows = store.db.prepare("SELECT * FROM maintenance_windows ORDER BY set_at").all() as Array<{
      spec: string;
      set_by: string | null;
      set_at: number;
    }>;
    expect(rows.map((r) => r.spec)).toEqual(texts);
    expect(rows.map((r) => r.set_by)).toEqual(texts.map((t, i) => (i % 2 === 0 ? null : t)));
    expect(rows[6]?.set_at).toBe(2 ** 40 + 6);
    const bytes = [Buffer.alloc(0), Buffer.from([0, 39, 92, 255])];
    store.db.runMany(
      `INSERT INTO artifacts (id, line, version, parent_version, stream_version, size_bytes, sha256, manifest, signature, created_at)
       VALUES (?, 'php', 1, 0, 2, 1, 'ab', ?, ?, 1)`,
      bytes.map((b, i) => [`ar_${i}`, b, b]),
    );
    for (const [i, b] of bytes.entries())
      expect(store.artifacts.byId(`ar_${i}`)?.manifest.equals(b)).toBe(true);
  });
});
