import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, type TestApp } from "./support.js";

interface Answer {
  error?: { code: string; message: string; details?: { problems?: Array<{ path: string }> } };
  spec?: { code: string | null; codeMount: string | null; hosts: string[] };
}

// Apps with code, and the requests that change what or where an app runs, refused with a coded error
// before anything is sent to a host.
describe("app requests", () => {
  let c: TestApp;

  async function request(method: "POST" | "GET", url: string, payload?: unknown) {
    const res = await c.controller.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${c.adminToken}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: res.statusCode, body: res.json<Answer>() };
  }

  beforeAll(async () => {
    c = await buildTestApp();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("stores an app's code line and mount, with every problem of a bad one listed", async () => {
    const created = await request("POST", "/v1/apps", {
      name: "shop",
      image: "php",
      code: "shop-src",
      hosts: ["role=web"],
      cmd: "exec /srv/code/start.sh",
      data: "/srv/app",
    });
    expect(created.status).toBe(200);
    expect(created.body.spec).toMatchObject({ code: "shop-src", codeMount: "/srv/code" });
    const plain = await request("POST", "/v1/apps", {
      name: "plain",
      image: "php",
      hosts: ["role=web"],
      cmd: "true",
    });
    expect(plain.body.spec).toMatchObject({ code: null, codeMount: null });
    const problems = async (fields: object) => {
      const bad = await request("POST", "/v1/apps", {
        name: "bad",
        image: "php",
        hosts: ["role=web"],
        cmd: "true",
        ...fields,
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error?.code).toBe("GILD_INVALID_SPEC");
      return (bad.body.error?.details?.problems ?? []).map((p) => p.path);
    };
    expect(await problems({ code: "php" })).toEqual(["code"]);
    expect(await problems({ code: "src", codeMount: "/srv/app/code", data: "/srv/app" })).toEqual([
      "codeMount",
    ]);
    expect(await problems({ codeMount: "/srv/code" })).toEqual(["codeMount"]);
  });

  it("refuses to deploy code to an app without a code line, or another line's version", async () => {
    const noCode = await request("POST", "/v1/apps/plain/deploy", { code: "shop-src@1" });
    expect(noCode.status).toBe(400);
    expect(noCode.body.error).toMatchObject({ code: "GILD_BAD_REQUEST", message: "plain has no code line" });
    const other = await request("POST", "/v1/apps/shop/deploy", { code: "blog@1" });
    expect(other.body.error?.message).toBe("shop's code line is shop-src, not blog");
    const none = await request("POST", "/v1/apps/shop/deploy", { code: "shop-src" });
    expect(none.status).toBe(404);
    expect(none.body.error?.code).toBe("GILD_IMAGE_NOT_FOUND");
  });

  it("changes an app's hosts only as asked: known hosts in, listed ones out, never none left", async () => {
    const empty = await request("POST", "/v1/apps/shop/hosts", {});
    expect(empty.body.error?.code).toBe("GILD_BAD_REQUEST");
    const unknown = await request("POST", "/v1/apps/shop/hosts", { add: ["web-9"] });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe("GILD_HOST_NOT_FOUND");
    const notListed = await request("POST", "/v1/apps/shop/hosts", { remove: ["web-1"] });
    expect(notListed.status).toBe(400);
    expect(notListed.body.error?.message).toContain("web-1 is not among shop's hosts (role=web)");
    const last = await request("POST", "/v1/apps/shop/hosts", { remove: ["role=web"] });
    expect(last.body.error?.code).toBe("GILD_INVALID_SPEC");
    // Nothing changed.
    expect((await request("GET", "/v1/apps/shop")).body.spec?.hosts).toEqual(["role=web"]);
  });
});
