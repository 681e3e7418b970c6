import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installAuth } from "../src/auth.js";
import { ConnectionGate } from "../src/connection-gate.js";
import { DashboardSessions } from "../src/dashboard-sessions.js";
import { ROUTE_ROLES } from "../src/route-roles.js";
import { hashSecret } from "../src/secrets.js";
import { buildTestApp, type TestApp } from "./support.js";

type Role = "viewer" | "operator" | "admin";
const ROLES: Role[] = ["viewer", "operator", "admin"];

describe("roles", () => {
  let c: TestApp;
  const tokens = {} as Record<Role, string>;
  const call = (method: string, url: string, token?: string, payload?: object) =>
    c.controller.app.inject({
      method: method as "GET",
      url,
      headers: token ? { authorization: `Bearer ${token}` } : {},
      ...(method === "GET" || method === "DELETE" ? {} : { payload: payload ?? {} }),
    });

  beforeAll(async () => {
    c = await buildTestApp();
    for (const role of ROLES) {
      const res = await call("POST", "/v1/users", c.adminToken, { name: `${role}-1`, role });
      expect(res.statusCode, res.body).toBe(201);
      tokens[role] = res.json<{ token: string }>().token;
    }
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("every rule in the table names a route the controller has", () => {
    for (const key of Object.keys(ROUTE_ROLES)) {
      const [method, url] = key.split(" ") as [string, string];
      expect(c.controller.app.hasRoute({ method: method as "GET", url }), key).toBe(true);
    }
  });

  it("a route without a rule stops the app from building", async () => {
    const app = Fastify();
    // The app under test is the built package; installAuth here is the source's: same classes.
    type AuthDeps = Parameters<typeof installAuth>[1];
    const store = c.controller.services.store as unknown as {
      users: AuthDeps["users"];
      sessions: ConstructorParameters<typeof DashboardSessions>[0]["repo"];
    };
    installAuth(app, {
      adminToken: "gadm_x",
      users: store.users,
      sessions: new DashboardSessions({
        repo: store.sessions,
        ttlMs: 60_000,
        secure: true,
        now: Date.now,
      }),
      audit: c.controller.services.audit as unknown as AuthDeps["audit"],
      connections: new ConnectionGate(app.server, {
        maxPending: 16,
        timeoutMs: 1000,
        log: c.controller.services.log,
      }),
    });
    expect(() => app.get("/v1/new-thing", async () => ({}))).toThrow(
      /GET \/v1\/new-thing has no access rule/,
    );
    await app.close();
  });

  // Route by route: no token is 401; a role below the rule is 403 GILD_FORBIDDEN; the rule's own role
  // gets past auth (the route may still answer 400 or 404 for the made-up names and empty bodies).
  for (const [key, access] of Object.entries(ROUTE_ROLES)) {
    const [method, pattern] = key.split(" ") as [string, string];
    const url = pattern.replace(/:[a-zA-Z]+/g, "nope");
    it(`${key} is ${access}`, async () => {
      if (access === "public") {
        expect((await call(method, url)).statusCode).not.toBe(401);
        return;
      }
      if (access === "host") {
        // Only a host credential opens it: no user token does, the admin's neither.
        for (const token of [undefined, c.adminToken, ...Object.values(tokens)])
          expect((await call(method, url, token, { publicKeyPem: "not a key" })).statusCode).toBe(401);
        return;
      }
      expect((await call(method, url)).statusCode).toBe(401);
      expect((await call(method, url, "gusr_not-a-token")).statusCode).toBe(401);
      const needed: Role = access === "metrics" ? "viewer" : access;
      for (const role of ROLES) {
        const res = await call(method, url, tokens[role]);
        if (ROLES.indexOf(role) < ROLES.indexOf(needed)) {
          expect(res.statusCode, `${role} on ${key}`).toBe(403);
          expect(res.json<{ error: { code: string } }>().error.code).toBe("GILD_FORBIDDEN");
        } else {
          expect([401, 403], `${role} on ${key}: ${res.body}`).not.toContain(res.statusCode);
        }
      }
      const admin = await call(method, url, c.adminToken);
      expect([401, 403], `the bootstrap admin on ${key}`).not.toContain(admin.statusCode);
    });
  }

  it("a path no route has needs a token too", async () => {
    expect((await call("GET", "/v1/no-such-thing")).statusCode).toBe(401);
    expect((await call("GET", "/v1/no-such-thing", tokens.viewer)).statusCode).toBe(404);
  });
});

describe("users", () => {
  let c: TestApp;
  const call = (method: string, url: string, token?: string, payload?: object, headers = {}) =>
    c.controller.app.inject({
      method: method as "GET",
      url,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      ...(method === "GET" || method === "DELETE" ? {} : { payload: payload ?? {} }),
    });

  beforeAll(async () => {
    c = await buildTestApp();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("a token is shown once and stored hashed; the audit records the user, not what the client claims", async () => {
    const made = await call("POST", "/v1/users", c.adminToken, { name: "alice", role: "operator" });
    expect(made.statusCode).toBe(201);
    const { token, user } = made.json<{ token: string; user: Record<string, unknown> }>();
    expect(token).toMatch(/^gusr_/);
    expect(JSON.stringify(user)).not.toContain(token);
    const stored = c.controller.services.store.users.byName("alice");
    expect(stored?.tokenHash).toBe(hashSecret(token));
    const listed = await call("GET", "/v1/users", c.adminToken);
    expect(listed.body).not.toContain(token);
    const res = await call("POST", "/v1/tokens", token, {}, { "x-gild-actor": "mallory" });
    expect(res.statusCode).toBe(403);
    const app = await call("DELETE", "/v1/apps/nope", token, undefined, { "x-gild-actor": "mallory" });
    expect(app.statusCode).toBe(404);
    const audit = c.controller.services.store.audit.list({ limit: 10 });
    expect(audit[0]).toMatchObject({ actor: "alice", method: "DELETE", status: 404 });
    expect(audit.some((a) => a.actor === "alice" && a.path === "/v1/tokens" && a.status === 403)).toBe(true);
    expect(audit.some((a) => String(a.actor).includes("mallory"))).toBe(false);
    const created = await call("POST", "/v1/users", c.adminToken, { name: "bob", role: "viewer" });
    expect(c.controller.services.store.users.byName("bob")?.createdBy).toBe("admin");
    expect(created.statusCode).toBe(201);
  });

  it("a rotated token replaces the old one at once; a removed user's token stops working", async () => {
    const made = await call("POST", "/v1/users", c.adminToken, { name: "carol", role: "viewer" });
    const first = made.json<{ token: string }>().token;
    expect((await call("GET", "/v1/hosts", first)).statusCode).toBe(200);
    const rotated = await call("POST", "/v1/users/carol/token", c.adminToken, { expires: "30d" });
    expect(rotated.statusCode).toBe(200);
    const { token: second, user } = rotated.json<{ token: string; user: { expiresAt: number } }>();
    expect(user.expiresAt).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect((await call("GET", "/v1/hosts", first)).statusCode).toBe(401);
    expect((await call("GET", "/v1/hosts", second)).statusCode).toBe(200);
    expect((await call("DELETE", "/v1/users/carol", c.adminToken)).statusCode).toBe(200);
    expect((await call("GET", "/v1/hosts", second)).statusCode).toBe(401);
    const again = await call("DELETE", "/v1/users/carol", c.adminToken);
    expect(again.json<{ error: { code: string } }>().error.code).toBe("GILD_USER_NOT_FOUND");
  });

  it("an expired token is refused", async () => {
    const token = "gusr_expired-token-for-the-test";
    c.controller.services.store.users.insert({
      name: "dave",
      role: "admin",
      tokenHash: hashSecret(token),
      createdAt: Date.now() - 2000,
      createdBy: "admin",
      tokenCreatedAt: Date.now() - 2000,
      expiresAt: Date.now() - 1000,
    });
    const res = await call("GET", "/v1/hosts", token);
    expect(res.statusCode).toBe(401);
    expect(res.json<{ error: { message: string } }>().error.message).toContain("expired");
  });

  it.each([
    [{ name: "alice", role: "viewer" }, "GILD_USER_EXISTS"],
    [{ name: "admin", role: "viewer" }, "GILD_BAD_REQUEST"],
    [{ name: "Bad Name", role: "viewer" }, "GILD_BAD_REQUEST"],
    [{ name: "erin", role: "root" }, "GILD_BAD_REQUEST"],
    [{ name: "erin", role: "viewer", expires: "soon" }, "GILD_BAD_REQUEST"],
  ])("refuses %j with %s", async (body, code) => {
    const res = await call("POST", "/v1/users", c.adminToken, body);
    expect(res.json<{ error: { code: string } }>().error.code).toBe(code);
  });
});
