import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqlite, Store } from "@gild/controller";
import { createRollout, type RolloutRecord, resolveStrategy } from "@gild/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTestDatabase, TEST_POSTGRES_URL, type TestDatabase, Undo } from "./support.js";

const hostId = (i: number) => `h_${i.toString(16).padStart(16, "0")}`;

function rollout(hosts: number): RolloutRecord {
  return createRollout(
    {
      id: "ro_00000000aa",
      line: "php",
      version: 2,
      strategy: resolveStrategy({ canary: 1, waves: ["10%", "100%"] }),
      targets: Array.from({ length: hosts }, (_, i) => ({
        hostId: hostId(i),
        hostName: `web-${i}`,
        apps: [{ name: "blog", version: 1 }],
      })),
      activeRolloutIds: [],
    },
    1_000,
  );
}

const hostRows = (store: Store) =>
  (store.db.prepare("SELECT COUNT(*) AS n FROM rollout_hosts").get() as { n: number }).n;

describe("rollouts repo: host steps as rows", () => {
  let dir: string;
  let database: TestDatabase;
  let store: Store;
  const undo = new Undo();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "gild-rollouts-repo-"));
    undo.push(() => rm(dir, { recursive: true, force: true }));
    database = await createTestDatabase(dir);
    undo.push(() => database.drop());
    store = Store.open(database.location);
    undo.push(() => store.close());
  });
  afterEach(() => undo.run());

  it("gives back the record it stored, waves in order, with the small rest in the rollouts row", () => {
    const record = rollout(40);
    store.rollouts.insert({ record, apps: ["blog"], createdBy: "admin" });
    expect(store.rollouts.get(record.id)).toEqual({ record, apps: ["blog"], createdBy: "admin" });
    expect(hostRows(store)).toBe(40);
    const row = store.db.prepare("SELECT record FROM rollouts").get() as { record: string };
    expect(JSON.parse(row.record)).not.toHaveProperty("hosts");
    expect(JSON.parse(row.record)).not.toHaveProperty("waves");
    expect(store.rollouts.activeIds("php")).toEqual([record.id]);
  });

  it("writes only the host steps that changed", () => {
    const before = rollout(40);
    store.rollouts.insert({ record: before, apps: null, createdBy: null });
    const canary = before.waves[0]?.[0] as string;
    const after: RolloutRecord = {
      ...before,
      state: "running",
      updatedAt: 2_000,
      hosts: {
        ...before.hosts,
        [canary]: { ...(before.hosts[canary] as RolloutRecord["hosts"][string]), state: "fetching" },
      },
    };
    // Every host a copy, as the planner makes them: equal fields are not written again.
    for (const id of Object.keys(after.hosts)) if (id !== canary) after.hosts[id] = { ...before.hosts[id]! };
    expect(store.rollouts.save(after, before)).toBe(1);
    expect(store.rollouts.get(before.id)?.record).toEqual(after);
    expect(store.rollouts.save(after, after)).toBe(0);
    expect(store.rollouts.save(after)).toBe(40);
  });

  it("keeps an empty wave", () => {
    const record = rollout(3);
    const empty: RolloutRecord = { ...record, waves: [...record.waves, []] };
    store.rollouts.insert({ record: empty, apps: null, createdBy: null });
    expect(store.rollouts.get(record.id)?.record.waves).toEqual(empty.waves);
  });

  // PostgreSQL's schema began after this migration: it has no database to move.
  it.skipIf(TEST_POSTGRES_URL)(
    "moves a rollout stored whole (before the migration) into rows (SQLite)",
    () => {
      const record = rollout(25);
      const path = join(dir, "old.db");
      const db = openSqlite(path).raw;
      // The database as the previous version left it: no rollout_hosts, the whole record as JSON.
      const version = db.pragma("user_version", { simple: true }) as number;
      db.exec("DROP TABLE rollout_hosts");
      db.pragma(`user_version = ${version - 1}`);
      db.prepare(
        `INSERT INTO rollouts (id, line, version, state, record, apps, created_by, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, NULL, 'admin', ?, ?)`,
      ).run(record.id, record.line, record.version, record.state, JSON.stringify(record), 1_000, 1_000);
      db.close();
      const migrated = Store.open(path);
      try {
        expect(migrated.rollouts.get(record.id)?.record).toEqual(record);
        expect(hostRows(migrated)).toBe(25);
      } finally {
        migrated.close();
      }
    },
  );
});
