import { statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, type TestApp } from "./support.js";

// What anyone who can reach the API, with or without a token, may send it.
describe("hostile requests to the API", () => {
  let c: TestApp;
  const auth = () => ({ authorization: `Bearer ${c.adminToken}` });
  const auditRows = () => c.controller.services.store.audit.list({ limit: 100_000 }).length;
  const dbBytes = () => {
    const db = c.config.paths.database;
    const size = (p: string) => {
      try {
        return statSync(p).size;
      } catch {
        return 0;
      }
    };
    return size(db) + size(`${db}-wal`);
  };

  beforeAll(async () => {
    c = await buildTestApp();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("a flood of unauthenticated requests with long paths is counted, not audited: the database does not grow", async () => {
    const rowsBefore = auditRows();
    const bytesBefore = dbBytes();
    const refusedBefore = c.controller.services.audit.refusedCount;
    const longPath = `/v1/${"a".repeat(14 * 1024)}`;
    for (let i = 0; i < 3000; i++) {
      const res = await c.controller.app.inject({ method: "POST", url: longPath, payload: {} });
      expect(res.statusCode).toBe(401);
    }
    expect(auditRows()).toBe(rowsBefore);
    expect(dbBytes() - bytesBefore).toBeLessThan(256 * 1024);
    expect(c.controller.services.audit.refusedCount - refusedBefore).toBe(3000);
    const listed = await c.controller.app.inject({ method: "GET", url: "/v1/audit", headers: auth() });
    expect(listed.json<{ refusedSinceStart: number }>().refusedSinceStart).toBeGreaterThanOrEqual(3000);
  });

  it("what an authenticated caller changes is audited, its path bounded", async () => {
    const rowsBefore = auditRows();
    await c.controller.app.inject({ method: "POST", url: "/v1/tokens", headers: auth(), payload: {} });
    const long = `/v1/${"b".repeat(5000)}`;
    const res = await c.controller.app.inject({ method: "POST", url: long, headers: auth(), payload: {} });
    expect(res.statusCode).toBe(404);
    expect(auditRows()).toBe(rowsBefore + 2);
    const [last] = c.controller.services.store.audit.list({ limit: 1 });
    expect(last?.path.length).toBeLessThanOrEqual(515);
    expect(last?.actor).toBe("admin");
  });

  it("keeps audit entries only as long as its retention says", () => {
    const repo = c.controller.services.store.audit;
    const retention = c.config.auditRetentionMs;
    repo.append({
      at: Date.now() - retention - 60_000,
      actor: "old",
      method: "POST",
      path: "/x",
      status: 200,
      summary: null,
    });
    repo.append({
      at: Date.now() - retention + 60_000,
      actor: "young",
      method: "POST",
      path: "/x",
      status: 200,
      summary: null,
    });
    c.controller.services.audit.prune();
    const actors = repo.list({ limit: 100_000 }).map((e) => e.actor);
    expect(actors).not.toContain("old");
    expect(actors).toContain("young");
  });

  it("takes the Bearer scheme in any case (RFC 9110)", async () => {
    for (const scheme of ["Bearer", "bearer", "BEARER"]) {
      const res = await c.controller.app.inject({
        method: "GET",
        url: "/v1/hosts",
        headers: { authorization: `${scheme} ${c.adminToken}` },
      });
      expect(res.statusCode, scheme).toBe(200);
    }
  });

  it("answers a body over the limit with 413 and a code, not 400", async () => {
    const res = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { ...auth(), "content-type": "application/json" },
      payload: `{"ttl":"${"x".repeat(50 * 1024 * 1024)}"}`,
    });
    expect(res.statusCode).toBe(413);
    expect(res.json<{ error: { code: string } }>().error.code).toBe("GILD_BODY_TOO_LARGE");
  });

  it("refuses a generation beyond 32 bits instead of answering about another one", async () => {
    const res = await c.controller.app.inject({
      method: "GET",
      url: "/v1/apps/blog/logs?host=web-1&generation=999999999999",
      headers: auth(),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ error: { message: string } }>().error.message).toMatch(/generation must be at most/);
  });
});
