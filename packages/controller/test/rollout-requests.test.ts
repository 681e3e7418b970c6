import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, type TestApp } from "./support.js";

interface Refusal {
  error: { code: string; message: string; details?: { problems?: Array<{ path: string; message: string }> } };
}

// A rollout request with several problems gets all of them in one answer, each with its path.
describe("rollout requests with problems", () => {
  let c: TestApp;
  const auth = () => ({ authorization: `Bearer ${c.adminToken}` });

  async function post(url: string, payload: unknown) {
    const res = await c.controller.app.inject({
      method: "POST",
      url,
      headers: auth(),
      payload: payload as object,
    });
    return { status: res.statusCode, body: res.json<Refusal>() };
  }
  const paths = (body: Refusal) => (body.error.details?.problems ?? []).map((p) => p.path);

  beforeAll(async () => {
    c = await buildTestApp();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("lists a missing image, a negative bake and unknown hosts together", async () => {
    for (const url of ["/v1/rollouts", "/v1/rollouts/plan"]) {
      const { status, body } = await post(url, {
        image: "x@99",
        strategy: { bake: "-5s" },
        hosts: ["nosuchhost", "alsonot"],
      });
      expect(status).toBe(400);
      expect(body.error.code).toBe("GILD_INVALID_SPEC");
      expect(paths(body)).toEqual(["image", "strategy.bake", "hosts[0]", "hosts[1]"]);
      expect(body.error.message).toContain("no image x@99");
      expect(body.error.message).toContain("no host named alsonot");
    }
  });

  it("names an unknown top-level field beside every other problem", async () => {
    const { status, body } = await post("/v1/rollouts", {
      image: "php@0",
      colour: "blue",
      strategy: { waves: ["0%"], canary: ["ghost"], bakee: "1m" },
      apps: "site",
    });
    expect(status).toBe(400);
    expect(body.error.code).toBe("GILD_INVALID_SPEC");
    expect(paths(body)).toEqual(
      expect.arrayContaining([
        "colour",
        "image",
        "strategy.bakee",
        "strategy.waves[0]",
        "strategy.canary[0]",
        "apps",
      ]),
    );
    expect(body.error.message).toContain('unknown field "colour"');
  });

  it("keeps the specific code when there is one problem that has one", async () => {
    const image = await post("/v1/rollouts", { image: "x@99" });
    expect(image.status).toBe(404);
    expect(image.body.error.code).toBe("GILD_IMAGE_NOT_FOUND");
  });

  it("names the field ajv refuses on other routes, instead of 'must NOT have additional properties'", async () => {
    const { status, body } = await post("/v1/tokens", { ttl: "1h", bogus: 1 });
    expect(status).toBe(400);
    expect(body.error.details?.problems).toEqual([{ path: "bogus", message: "is not a known field" }]);
    expect(body.error.message).toContain("bogus");
  });
});
