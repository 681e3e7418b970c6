import { rm } from "node:fs/promises";
import { join } from "node:path";
import { joinController } from "@gild/agent";
import { formatJoinToken, isGildError, parseJoinToken } from "@gild/core";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestController, type TestController } from "./support.js";

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isGildError(err) ? err.code : String(err)).toBe(code);
}

describeWith(["root", "btrfs"], "controller API: auth, tokens, enrollment", () => {
  let c: TestController;
  let other: TestController;
  const auth = () => ({ authorization: `Bearer ${c.adminToken}` });

  beforeAll(async () => {
    c = await startTestController();
    other = await startTestController();
  });

  afterAll(async () => {
    await c?.destroy();
    await other?.destroy();
  });

  const newToken = async (ttl?: string): Promise<string> => {
    const res = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: auth(),
      payload: ttl ? { ttl } : {},
    });
    expect(res.statusCode).toBe(200);
    return res.json<{ token: string }>().token;
  };

  describe("admin authentication", () => {
    it("answers /healthz without a token", async () => {
      const res = await c.controller.app.inject({ method: "GET", url: "/healthz" });
      expect(res.json()).toMatchObject({ ok: true });
    });

    it("refuses the API without, or with a wrong, admin token", async () => {
      for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: c.adminToken }]) {
        const res = await c.controller.app.inject({ method: "GET", url: "/v1/hosts", headers });
        expect(res.statusCode).toBe(401);
        expect(res.json().error.code).toBe("GILD_UNAUTHENTICATED");
        expect(res.json().error.hint).toBeTruthy();
      }
    });

    it("keeps the admin token readable by root only", async () => {
      const { statSync } = await import("node:fs");
      expect(statSync(c.config.paths.adminToken).mode & 0o777).toBe(0o600);
      expect(statSync(c.config.paths.signingKey).mode & 0o777).toBe(0o600);
    });

    it("answers unknown routes and bad bodies with coded errors", async () => {
      const missing = await c.controller.app.inject({ method: "GET", url: "/v1/nothing", headers: auth() });
      expect(missing.json().error.code).toBe("GILD_NOT_FOUND");
      const bad = await c.controller.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth(),
        payload: { ttl: 5, x: 1 },
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.code).toBe("GILD_BAD_REQUEST");
    });
  });

  describe("joining", () => {
    it("trades a token for a credential after checking the CA pin, once", async () => {
      const token = await newToken();
      const stateDir = join(c.fs.dir, "agent-a");
      const identity = await joinController({
        controllerUrl: c.url,
        token,
        name: "web-1",
        labels: { role: "web" },
        stateDir,
      });
      expect(identity).toMatchObject({ name: "web-1", labels: { role: "web" } });
      const { statSync, readFileSync } = await import("node:fs");
      expect(statSync(join(stateDir, "credential")).mode & 0o777).toBe(0o600);
      const credential = readFileSync(join(stateDir, "credential"), "utf8").trim();
      // The controller keeps only a hash of the credential.
      const stored = c.store.db.prepare("SELECT credential_hash FROM hosts WHERE name = 'web-1'").get() as {
        credential_hash: string;
      };
      expect(stored.credential_hash).not.toContain(credential.split(".")[1]);
      const hosts = await c.controller.app.inject({ method: "GET", url: "/v1/hosts", headers: auth() });
      expect(hosts.json().hosts.map((h: { name: string }) => h.name)).toContain("web-1");

      await expectCode(
        joinController({
          controllerUrl: c.url,
          token,
          name: "web-2",
          labels: {},
          stateDir: join(c.fs.dir, "agent-b"),
        }),
        "GILD_TOKEN_USED",
      );
    });

    it("refuses an expired token", async () => {
      const token = await newToken("1m");
      c.clock.offsetMs = 120_000;
      try {
        await expectCode(
          joinController({
            controllerUrl: c.url,
            token,
            name: "late",
            labels: {},
            stateDir: join(c.fs.dir, "agent-late"),
          }),
          "GILD_TOKEN_EXPIRED",
        );
      } finally {
        c.clock.offsetMs = 0;
      }
    });

    it("refuses forged tokens: a wrong secret, an unknown id, garbage", async () => {
      const real = parseJoinToken(await newToken());
      const forged = formatJoinToken({
        ...real,
        secret: real.secret.replace(/^./, (ch) => (ch === "A" ? "B" : "A")),
      });
      await expectCode(
        joinController({
          controllerUrl: c.url,
          token: forged,
          name: "forged",
          labels: {},
          stateDir: join(c.fs.dir, "agent-f"),
        }),
        "GILD_TOKEN_INVALID",
      );
      const unknown = formatJoinToken({ ...real, id: "0123456789abcdef" });
      await expectCode(
        joinController({
          controllerUrl: c.url,
          token: unknown,
          name: "unknown",
          labels: {},
          stateDir: join(c.fs.dir, "agent-u"),
        }),
        "GILD_TOKEN_INVALID",
      );
      await expectCode(
        joinController({
          controllerUrl: c.url,
          token: "not-a-token",
          name: "garbage",
          labels: {},
          stateDir: join(c.fs.dir, "agent-g"),
        }),
        "GILD_TOKEN_INVALID",
      );
      // The real token was never consumed by the failures.
      await joinController({
        controllerUrl: c.url,
        token: formatJoinToken(real),
        name: "web-3",
        labels: {},
        stateDir: join(c.fs.dir, "agent-3"),
      });
    });

    it("refuses a controller whose CA is not the pinned one, before sending the secret", async () => {
      const token = await newToken();
      // A token of controller c presented to controller `other`: the agent sees other's CA and stops.
      await expectCode(
        joinController({
          controllerUrl: other.url,
          token,
          name: "mitm",
          labels: {},
          stateDir: join(c.fs.dir, "agent-mitm"),
        }),
        "GILD_CA_MISMATCH",
      );
      const tokens = await other.controller.app.inject({
        method: "GET",
        url: "/v1/tokens",
        headers: { authorization: `Bearer ${other.adminToken}` },
      });
      expect(tokens.json().tokens).toEqual([]);
      // And c's token is still good: its secret never left the agent.
      await joinController({
        controllerUrl: c.url,
        token,
        name: "web-4",
        labels: {},
        stateDir: join(c.fs.dir, "agent-4"),
      });
      await rm(join(c.fs.dir, "agent-mitm"), { recursive: true, force: true });
    });

    it("refuses a duplicate host name and invalid labels, listing the problems", async () => {
      await expectCode(
        joinController({
          controllerUrl: c.url,
          token: await newToken(),
          name: "web-1",
          labels: {},
          stateDir: join(c.fs.dir, "agent-dup"),
        }),
        "GILD_HOST_EXISTS",
      );
      const err = await joinController({
        controllerUrl: c.url,
        token: await newToken(),
        name: "Bad Name",
        labels: { "bad key": "x y" },
        stateDir: join(c.fs.dir, "agent-bad"),
      }).catch((e: unknown) => e);
      expect(isGildError(err, "GILD_INVALID_SPEC")).toBe(true);
      expect((err as { details: { problems: unknown[] } }).details.problems).toHaveLength(3);
    });

    it("records every mutation in the audit log", async () => {
      const res = await c.controller.app.inject({
        method: "GET",
        url: "/v1/audit?limit=100",
        headers: auth(),
      });
      const entries = res.json<{
        entries: Array<{ actor: string; path: string; status: number; summary: string | null }>;
      }>().entries;
      expect(entries.some((e) => e.path === "/v1/tokens" && e.status === 200)).toBe(true);
      expect(entries.some((e) => e.path === "/v1/enroll" && e.summary?.includes("web-1"))).toBe(true);
      expect(entries.some((e) => e.path === "/v1/enroll" && e.status === 401)).toBe(true);
    });
  });
});
