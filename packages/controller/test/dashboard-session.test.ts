import { CONTENT_SECURITY_POLICY, DashboardSessions } from "@gild/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../src/secrets.js";
import { buildTestApp, type TestApp } from "./support.js";

const HOST = "controller.test:7443";
const ORIGIN = `https://${HOST}`;

describe("the dashboard's files and headers", () => {
  let c: TestApp;
  beforeAll(async () => {
    c = await buildTestApp();
  });
  afterAll(async () => {
    await c?.destroy();
  });

  it("serves its page and assets without a credential, under a strict CSP, with no inline script", async () => {
    const page = await c.controller.app.inject({ method: "GET", url: "/" });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    const csp = String(page.headers["content-security-policy"]);
    expect(csp).toBe(CONTENT_SECURITY_POLICY);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    // Every script is a file of its own (the CSP would refuse an inline one anyway).
    const scripts = [...page.body.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    expect(scripts.length).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag).toMatch(/\ssrc="\/assets\/[^"]+\.js"/);
    expect(page.body).not.toMatch(/<style\b|\sstyle="/);
    const src = /src="\/assets\/([^"]+\.js)"/.exec(page.body)?.[1] as string;
    const script = await c.controller.app.inject({ method: "GET", url: `/assets/${src}` });
    expect(script.statusCode).toBe(200);
    expect(script.headers["content-type"]).toContain("text/javascript");
    expect(script.headers["cache-control"]).toContain("immutable");
    // Only the built files, by exact name: nothing else is reached through /assets.
    for (const url of [
      "/assets/nope.js",
      "/assets/../index.html",
      "/assets/%2e%2e/index.html",
      "/index.html",
    ]) {
      const res = await c.controller.app.inject({ method: "GET", url });
      expect([401, 404], `${url}: ${res.statusCode}`).toContain(res.statusCode);
    }
    // An API answer carries the headers too, and still needs its token.
    const api = await c.controller.app.inject({ method: "GET", url: "/v1/hosts" });
    expect(api.statusCode).toBe(401);
    expect(api.headers["content-security-policy"]).toBe(csp);
  });
});

describe("dashboard sessions", () => {
  let c: TestApp;
  const tokens: Record<string, string> = {};
  const inject = (
    method: string,
    url: string,
    opts: { cookie?: string; csrf?: string; origin?: string; payload?: object; bearer?: string } = {},
  ) =>
    c.controller.app.inject({
      method: method as "GET",
      url,
      headers: {
        host: HOST,
        ...(opts.cookie ? { cookie: opts.cookie } : {}),
        ...(opts.csrf ? { "x-gild-csrf": opts.csrf } : {}),
        ...(opts.origin ? { origin: opts.origin } : {}),
        ...(opts.bearer ? { authorization: `Bearer ${opts.bearer}` } : {}),
      },
      ...(opts.payload ? { payload: opts.payload } : {}),
    });
  const user = async (name: string, role: string) => {
    const res = await inject("POST", "/v1/users", { bearer: c.adminToken, payload: { name, role } });
    expect(res.statusCode, res.body).toBe(201);
    tokens[name] = res.json<{ token: string }>().token;
  };
  /** Sign in: the cookie to send back (name=value) and the session's CSRF token. */
  const signIn = async (token: string) => {
    const res = await inject("POST", "/v1/session", { payload: { token } });
    expect(res.statusCode, res.body).toBe(200);
    const setCookie = String(res.headers["set-cookie"]);
    return {
      setCookie,
      cookie: setCookie.split(";")[0] as string,
      body: res.json<{ csrfToken: string; user: string; role: string }>(),
    };
  };
  const errorCode = (res: { json: <T>() => T }) => res.json<{ error: { code: string } }>().error.code;

  beforeAll(async () => {
    c = await buildTestApp();
    await user("alice", "operator");
    await user("vera", "viewer");
  });
  afterAll(async () => {
    await c?.destroy();
  });

  it("trades a token for an HttpOnly, SameSite=Strict, Secure cookie; the store keeps only the id's hash", async () => {
    const bad = await inject("POST", "/v1/session", { payload: { token: "gusr_not-a-token" } });
    expect(bad.statusCode).toBe(401);
    expect(bad.headers["set-cookie"]).toBeUndefined();
    const { setCookie, cookie, body } = await signIn(tokens.alice as string);
    expect(setCookie).toMatch(
      /^__Host-gild-session=[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$/,
    );
    expect(body).toMatchObject({ user: "alice", role: "operator" });
    const id = cookie.split("=")[1] as string;
    expect(id).not.toContain(tokens.alice);
    const rows = c.controller.services.store.db.prepare("SELECT * FROM sessions").all();
    expect(JSON.stringify(rows)).not.toContain(id);
    expect(JSON.stringify(rows)).not.toContain(tokens.alice);
    expect(JSON.stringify(rows)).toContain(hashSecret(id));
    const who = await inject("GET", "/v1/session", { cookie });
    expect(who.json()).toMatchObject({ user: "alice", role: "operator", csrfToken: body.csrfToken });
    expect((await inject("GET", "/v1/hosts", { cookie })).statusCode).toBe(200);
    // The audit records the user, as for a bearer token.
    expect(c.controller.services.store.audit.list({ limit: 5 })[0]).toMatchObject({
      actor: "alice",
      path: "/v1/session",
      status: 200,
    });
  });

  it("refuses a cookie mutation without the session's CSRF token or from another origin", async () => {
    const { cookie, body } = await signIn(tokens.alice as string);
    const pause = (opts: { csrf?: string; origin?: string }) =>
      inject("POST", "/v1/rollouts/nope/pause", { cookie, payload: {}, ...opts });
    for (const [what, opts] of [
      ["no token, no origin", {}],
      ["no token", { origin: ORIGIN }],
      ["a wrong token", { csrf: "x".repeat(43), origin: ORIGIN }],
      ["no origin", { csrf: body.csrfToken }],
      ["another origin", { csrf: body.csrfToken, origin: "https://evil.test" }],
    ] as const) {
      const res = await pause(opts);
      expect(res.statusCode, what).toBe(403);
      expect(errorCode(res), what).toBe("GILD_CSRF_REJECTED");
    }
    // Past auth: the made-up rollout is not found.
    const ok = await pause({ csrf: body.csrfToken, origin: ORIGIN });
    expect(ok.statusCode, ok.body).toBe(404);
    // Another session's token does not do.
    const other = await signIn(tokens.alice as string);
    expect((await pause({ csrf: other.body.csrfToken, origin: ORIGIN })).statusCode).toBe(403);
    // A bearer token needs neither (it is not sent by the browser on its own).
    const bearer = await inject("POST", "/v1/rollouts/nope/pause", { bearer: tokens.alice, payload: {} });
    expect(bearer.statusCode).toBe(404);
  });

  it("gives a viewer's session no mutations: 403 GILD_FORBIDDEN", async () => {
    const { cookie, body } = await signIn(tokens.vera as string);
    const res = await inject("POST", "/v1/rollouts/nope/pause", {
      cookie,
      csrf: body.csrfToken,
      origin: ORIGIN,
      payload: {},
    });
    expect(res.statusCode).toBe(403);
    expect(errorCode(res)).toBe("GILD_FORBIDDEN");
  });

  it("ends a user's sessions when its token is rotated or the user removed, and at sign-out", async () => {
    await user("bob", "operator");
    const first = await signIn(tokens.bob as string);
    expect((await inject("GET", "/v1/hosts", { cookie: first.cookie })).statusCode).toBe(200);
    const rotated = await inject("POST", "/v1/users/bob/token", { bearer: c.adminToken, payload: {} });
    expect(rotated.statusCode).toBe(200);
    expect((await inject("GET", "/v1/hosts", { cookie: first.cookie })).statusCode).toBe(401);
    const second = await signIn(rotated.json<{ token: string }>().token);
    expect((await inject("GET", "/v1/hosts", { cookie: second.cookie })).statusCode).toBe(200);
    // A session whose row survived the rotation (made before it) ends too: it is checked against the token.
    c.controller.services.store.users.setToken("bob", {
      tokenHash: hashSecret("gusr_other"),
      tokenCreatedAt: 0,
      expiresAt: null,
    });
    expect((await inject("GET", "/v1/hosts", { cookie: second.cookie })).statusCode).toBe(401);
    const third = await signIn("gusr_other");
    expect((await inject("DELETE", "/v1/users/bob", { bearer: c.adminToken })).statusCode).toBe(200);
    expect((await inject("GET", "/v1/hosts", { cookie: third.cookie })).statusCode).toBe(401);

    const alice = await signIn(tokens.alice as string);
    const out = await inject("DELETE", "/v1/session", {
      cookie: alice.cookie,
      csrf: alice.body.csrfToken,
      origin: ORIGIN,
    });
    expect(out.statusCode, out.body).toBe(200);
    expect(String(out.headers["set-cookie"])).toContain("Max-Age=0");
    expect((await inject("GET", "/v1/hosts", { cookie: alice.cookie })).statusCode).toBe(401);
  });

  it("the bootstrap admin token signs in as admin", async () => {
    const { body } = await signIn(c.adminToken);
    expect(body).toMatchObject({ user: "admin", role: "admin" });
  });

  it("a session expires at its TTL, or earlier with its token", () => {
    let now = 1_000_000;
    const sessions = new DashboardSessions({
      repo: c.controller.services.store.sessions,
      ttlMs: 60_000,
      secure: false,
      now: () => now,
    });
    expect(sessions.cookieName).toBe("gild-session");
    const long = sessions.open({ actor: "x", role: "viewer", tokenHash: "h", expiresAt: null });
    const short = sessions.open({ actor: "y", role: "viewer", tokenHash: "h", expiresAt: now + 1000 });
    expect(sessions.setCookie(long)).not.toContain("Secure");
    expect(sessions.find(long.id)?.actor).toBe("x");
    now += 1000;
    expect(sessions.find(short.id)).toBeUndefined();
    expect(sessions.find(long.id)?.actor).toBe("x");
    now += 59_000;
    expect(sessions.find(long.id)).toBeUndefined();
  });
});
