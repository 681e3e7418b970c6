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

interface HostWindow {
  spec: string | null;
  rules: string[];
  open: boolean;
  nextOpenAt: number | null;
}

// Maintenance window rules through the API: set, list, remove, validation, and the effective window
// each host shows (its own rule over its labels'). What the planners do with them is in core's tests.
describe("maintenance window requests", () => {
  let c: TestApp;
  const auth = () => ({ authorization: `Bearer ${c.adminToken}` });

  async function call(method: "GET" | "POST" | "PUT" | "DELETE", url: string, payload?: unknown) {
    const res = await c.controller.app.inject({
      method,
      url,
      headers: auth(),
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: res.statusCode, body: res.json<Answer>() };
  }
  const windowOf = async (name: string) => (await call("GET", `/v1/hosts/${name}`)).body.window as HostWindow;
  const target = (t: string) => `/v1/maintenance-windows/${encodeURIComponent(t)}`;

  beforeAll(async () => {
    c = await buildTestApp();
    for (const [name, role] of [
      ["web-1", "web"],
      ["web-2", "web"],
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

  it("without rules every host is always open", async () => {
    expect(await windowOf("web-1")).toEqual({
      spec: null,
      rules: [],
      open: true,
      nextOpenAt: null,
      openUntil: null,
    });
    expect((await call("GET", "/v1/maintenance-windows")).body).toEqual({ rules: [] });
  });

  it("sets a label's and a host's windows, canonical; the host's own rule wins over its labels'", async () => {
    const label = await call("PUT", target("role=web"), { spec: "mon-fri 22:00-06:00 utc" });
    expect(label).toEqual({ status: 200, body: { target: "role=web", spec: "Mon-Fri 22:00-06:00 UTC" } });
    expect((await call("PUT", target("web-2"), { spec: "Sat 02:00-05:00 UTC" })).status).toBe(200);
    expect(await windowOf("web-1")).toMatchObject({ spec: "Mon-Fri 22:00-06:00 UTC", rules: ["role=web"] });
    expect(await windowOf("web-2")).toMatchObject({ spec: "Sat 02:00-05:00 UTC", rules: ["web-2"] });
    expect((await windowOf("db-1")).spec).toBeNull();
    const w = await windowOf("web-2");
    expect(typeof w.open).toBe("boolean");
    expect(w.nextOpenAt).toBeGreaterThanOrEqual(Date.now() - 60_000);

    const { body } = await call("GET", "/v1/maintenance-windows");
    expect(
      (body.rules as Array<Record<string, unknown>>).map((r) => [r.target, r.kind, r.spec, r.hosts]),
    ).toEqual([
      ["role=web", "label", "Mon-Fri 22:00-06:00 UTC", ["web-1"]],
      ["web-2", "host", "Sat 02:00-05:00 UTC", ["web-2"]],
    ]);
    const hosts = (await call("GET", "/v1/hosts")).body.hosts as Array<{ name: string; window: HostWindow }>;
    expect(hosts.map((h) => [h.name, h.window.spec])).toEqual([
      ["db-1", null],
      ["web-1", "Mon-Fri 22:00-06:00 UTC"],
      ["web-2", "Sat 02:00-05:00 UTC"],
    ]);
  });

  it("refuses a bad spec with every problem and its path, an unknown host, and a bad selector", async () => {
    const bad = await call("PUT", target("web-1"), { spec: "Caturday 02:00-05:00 Europe/Berlin" });
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe("GILD_INVALID_SPEC");
    expect((bad.body.error?.details?.problems ?? []).map((p) => p.path).sort()).toEqual([
      "window.days",
      "window.zone",
    ]);
    const missing = await call("PUT", target("web-1"), {});
    expect([missing.status, missing.body.error?.code]).toEqual([400, "GILD_INVALID_SPEC"]);
    const ghost = await call("PUT", target("ghost"), { spec: "daily 01:00-02:00 UTC" });
    expect([ghost.status, ghost.body.error?.code]).toEqual([404, "GILD_HOST_NOT_FOUND"]);
    const selector = await call("PUT", target("role=we b"), { spec: "daily 01:00-02:00 UTC" });
    expect([selector.status, selector.body.error?.code]).toEqual([400, "GILD_INVALID_SPEC"]);
    // Nothing was stored by a refused request.
    expect(((await call("GET", "/v1/maintenance-windows")).body.rules as unknown[]).length).toBe(2);
  });

  it("a host-update plan names the hosts outside their windows and when each opens", async () => {
    // An hour twelve hours from now: certainly closed now, whatever the time of day.
    const hour = (new Date().getUTCHours() + 12) % 24;
    const hh = (h: number) => String(h).padStart(2, "0");
    const spec = `daily ${hh(hour)}:00-${hh((hour + 1) % 24)}:00 UTC`;
    expect((await call("PUT", target("db-1"), { spec })).status).toBe(200);
    const { status, body } = await call("POST", "/v1/host-updates/plan", {
      command: "true",
      hosts: ["db-1", "web-1"],
      strategy: { canary: ["db-1"] },
    });
    expect(status).toBe(200);
    const waves = body.waves as Array<{ hosts: string[]; windowOpensAt: Record<string, number> }>;
    expect(Object.keys(waves[0]?.windowOpensAt ?? {})).toEqual(["db-1"]);
    expect(new Date(waves[0]?.windowOpensAt["db-1"] ?? 0).getUTCHours()).toBe(hour);
    expect((await windowOf("db-1")).open).toBe(false);
    expect((await call("DELETE", target("db-1"))).status).toBe(200);
  });

  it("removes a rule; the host falls back to its labels' rules; removing twice is not found", async () => {
    expect(await call("DELETE", target("web-2"))).toEqual({ status: 200, body: { removed: "web-2" } });
    expect((await windowOf("web-2")).rules).toEqual(["role=web"]);
    const again = await call("DELETE", target("web-2"));
    expect([again.status, again.body.error?.code]).toEqual([404, "GILD_NOT_FOUND"]);
    expect((await call("DELETE", target("role=web"))).status).toBe(200);
    expect((await windowOf("web-2")).spec).toBeNull();
  });
});
