import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, type TestApp } from "./support.js";

interface Answer {
  error?: {
    code: string;
    message: string;
    details?: { problems?: Array<{ path: string; message: string }> };
  };
  [key: string]: unknown;
}

// The host-update API without agents: requests, plans, the job as stored, verbs. What agents do with
// the commands is in the e2e tests.
describe("host-update requests", () => {
  let c: TestApp;
  const auth = () => ({ authorization: `Bearer ${c.adminToken}` });

  async function call(method: "GET" | "POST", url: string, payload?: unknown) {
    const res = await c.controller.app.inject({
      method,
      url,
      headers: auth(),
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: res.statusCode, body: res.json<Answer>() };
  }
  const paths = (body: Answer) => (body.error?.details?.problems ?? []).map((p) => p.path);

  beforeAll(async () => {
    c = await buildTestApp();
    for (const [name, role] of [
      ["web-1", "web"],
      ["web-2", "web"],
      ["web-3", "web"],
      ["db-1", "db"],
    ] as const) {
      const token = (await call("POST", "/v1/tokens", {})).body.token as string;
      const joined = await c.controller.app.inject({
        method: "POST",
        url: "/v1/enroll",
        payload: { token, name, labels: { role } },
      });
      expect(joined.statusCode).toBe(200);
    }
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("lists every problem of a request at once, with its path", async () => {
    for (const url of ["/v1/host-updates", "/v1/host-updates/plan"]) {
      const { status, body } = await call("POST", url, {
        command: "apt-get -y upgrade",
        argv: ["true"],
        strategy: { reboot: "sometimes", deadline: "soon" },
        hosts: ["web-1", "ghost"],
        colour: "blue",
      });
      expect(status).toBe(400);
      expect(body.error?.code).toBe("GILD_INVALID_SPEC");
      expect(paths(body).sort()).toEqual(
        ["colour", "command", "strategy.reboot", "strategy.deadline", "hosts[1]"].sort(),
      );
    }
  });

  it("needs hosts: a host update never means every host", async () => {
    const { status, body } = await call("POST", "/v1/host-updates/plan", { command: "true" });
    expect(status).toBe(400);
    expect(paths(body)).toEqual(["hosts"]);
  });

  it("plans waves by names and labels, and says a failure is not undone", async () => {
    const { status, body } = await call("POST", "/v1/host-updates/plan", {
      command: "apt-get update && apt-get -y upgrade",
      hosts: ["role=web"],
      strategy: { canary: "web-2", waves: ["1"], reboot: "always" },
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      argv: ["/bin/sh", "-c", "apt-get update && apt-get -y upgrade"],
      strategy: { reboot: "always", maxUnavailable: { count: 1 } },
    });
    const waves = body.waves as Array<{ canary: boolean; hosts: string[] }>;
    expect(waves[0]).toEqual({ index: 0, canary: true, hosts: ["web-2"], windowOpensAt: {} });
    expect(
      waves
        .slice(1)
        .flatMap((w) => w.hosts)
        .sort(),
    ).toEqual(["web-1", "web-3"]);
    expect((body.notes as string[]).join(" ")).toMatch(/no automatic un-upgrade/);
    // A plan stores nothing.
    expect((await call("GET", "/v1/host-updates")).body.hostUpdates).toEqual([]);
  });

  it("starts a job: stored, its canary waiting for its host to come online", async () => {
    const { status, body } = await call("POST", "/v1/host-updates", {
      argv: ["/usr/bin/touch", "/tmp/x"],
      hosts: ["web-1", "web-2"],
      strategy: { canary: "web-1" },
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ state: "running", settled: false, argv: ["/usr/bin/touch", "/tmp/x"] });
    const id = body.id as string;
    expect(id).toMatch(/^hu_[0-9a-f]{10}$/);
    const hosts = (body.waves as Array<{ hosts: Array<{ name: string; state: string; online: boolean }> }>)[0]
      ?.hosts;
    expect(hosts).toEqual([expect.objectContaining({ name: "web-1", state: "pending", online: false })]);

    // One active job per host.
    const again = await call("POST", "/v1/host-updates", { command: "true", hosts: ["role=web"] });
    expect(again.status).toBe(409);
    expect(again.body.error?.code).toBe("GILD_HOST_UPDATE_ACTIVE");

    const shown = await call("GET", "/v1/host-updates/current");
    expect(shown.body).toMatchObject({ id, state: "running" });
    expect((shown.body.events as Array<{ kind: string }>)[0]?.kind).toBe("job-state");

    expect((await call("POST", `/v1/host-updates/${id}/pause`)).body).toMatchObject({
      state: "paused",
      pauseCause: "operator",
    });
    expect((await call("POST", `/v1/host-updates/${id}/resume`)).body).toMatchObject({ state: "running" });
    const aborted = await call("POST", `/v1/host-updates/${id}/abort`);
    expect(aborted.body).toMatchObject({ state: "aborted", settled: true });
    const refused = await call("POST", `/v1/host-updates/${id}/abort`);
    expect(refused.status).toBe(409);
    expect(refused.body.error?.code).toBe("GILD_HOST_UPDATE_STATE");

    // Settled: the hosts are free for another job.
    expect((await call("POST", "/v1/host-updates", { command: "true", hosts: ["web-1"] })).status).toBe(200);
  });

  it("answers an unknown job with its code", async () => {
    const { status, body } = await call("GET", "/v1/host-updates/hu_0000000000");
    expect(status).toBe(404);
    expect(body.error?.code).toBe("GILD_HOST_UPDATE_NOT_FOUND");
  });
});
