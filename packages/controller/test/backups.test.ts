import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backupFileName } from "../src/routes/backups.js";
import { buildTestApp, TEST_POSTGRES_URL, type TestApp } from "./support.js";

// The store the tests run against: SQLite, or PostgreSQL in the run test/run makes with a server.
const onPostgres = TEST_POSTGRES_URL !== undefined && TEST_POSTGRES_URL !== "";

describe("backups of the store", () => {
  let c: TestApp;
  const backup = () =>
    c.controller.app.inject({
      method: "POST",
      url: "/v1/backups",
      headers: { authorization: `Bearer ${c.adminToken}` },
      payload: {},
    });

  beforeAll(async () => {
    c = await buildTestApp();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("name each copy by its time, in a name that sorts and needs no quoting", () => {
    expect(backupFileName(Date.UTC(2026, 11, 7, 14, 5, 9, 42))).toBe("gild-2026-12-07T14-05-09-042Z.db");
  });

  it.skipIf(onPostgres)(
    "are whole copies made while the controller runs, each in a file of its own",
    async () => {
      const made = await c.controller.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: { authorization: `Bearer ${c.adminToken}` },
        payload: {},
      });
      expect(made.statusCode, made.body).toBe(200);
      const first = await backup();
      expect(first.statusCode, first.body).toBe(200);
      const answer = first.json<{ path: string; bytes: number; createdAt: number }>();
      expect(dirname(answer.path)).toBe(c.config.paths.backups);
      expect(answer.bytes).toBe(statSync(answer.path).size);
      expect(statSync(answer.path).mode & 0o777).toBe(0o600);
      const copy = new Database(answer.path, { readonly: true });
      try {
        expect(copy.pragma("integrity_check", { simple: true })).toBe("ok");
        const tokens = copy.prepare("SELECT id FROM join_tokens").all() as Array<{ id: string }>;
        expect(tokens.map((t) => t.id)).toContain(made.json<{ id: string }>().id);
      } finally {
        copy.close();
      }
      const second = await backup();
      expect(second.statusCode, second.body).toBe(200);
      expect(second.json<{ path: string }>().path).not.toBe(answer.path);
      // No half-made copy is left behind under its working name.
      expect(readdirSync(c.config.paths.backups).filter((f) => f.endsWith(".partial"))).toEqual([]);
      const audit = c.controller.services.store.audit.list({ limit: 5 });
      expect(audit[0]).toMatchObject({ actor: "admin", path: "/v1/backups", status: 200 });
    },
  );

  it.skipIf(onPostgres)(
    "are the only way to read the database while the controller has it: no other connection opens it",
    () => {
      const path = c.config.paths.database;
      expect(existsSync(path)).toBe(true);
      // The WAL index lives in the controller's memory (no gild.db-shm mapped): another reader is locked out.
      expect(existsSync(`${path}-shm`)).toBe(false);
      const other = new Database(path, { timeout: 0 });
      try {
        expect(() => other.prepare("SELECT count(*) FROM hosts").get()).toThrow(/locked/);
      } finally {
        other.close();
      }
    },
  );

  it.runIf(onPostgres)(
    "of a PostgreSQL store are refused with a code and a hint: pg_dump backs it up",
    async () => {
      const refused = await backup();
      expect(refused.statusCode).toBe(400);
      const { error } = refused.json<{ error: { code: string; hint: string } }>();
      expect(error.code).toBe("GILD_BAD_REQUEST");
      expect(error.hint).toMatch(/pg_dump/);
      expect(existsSync(join(c.config.paths.backups))).toBe(false);
    },
  );
});
