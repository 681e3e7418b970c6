import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv } from "ajv";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without type declarations
import { renderApiDocs } from "../../../scripts/gen-api-docs.mjs";
import { installOpenApi } from "../src/openapi.js";
import { ROUTE_ROLES } from "../src/route-roles.js";
import { buildTestApp, type TestApp } from "./support.js";

interface Operation {
  summary?: string;
  tags?: string[];
  "x-gild-access"?: string;
  responses: Record<string, { description: string; content?: Record<string, { schema?: object }> }>;
}
type Document = { paths: Record<string, Record<string, Operation>> };

/** The operation of a route-roles.ts key ("GET /v1/hosts/:name") in the document, if any. */
function operationOf(doc: Document, key: string): Operation | undefined {
  const [method, url] = key.split(" ") as [string, string];
  // @fastify/swagger writes :name as {name} and a trailing wildcard as {*}.
  return doc.paths[url.replace(/:([A-Za-z]+)/g, "{$1}").replace(/\*$/, "{*}")]?.[method.toLowerCase()];
}

describe("the OpenAPI document (GET /v1/openapi.json)", () => {
  let c: TestApp;
  let doc: Document;
  const call = (method: string, url: string, payload?: object) =>
    c.controller.app.inject({
      method: method as "GET",
      url,
      headers: { authorization: `Bearer ${c.adminToken}` },
      ...(payload ? { payload } : {}),
    });

  beforeAll(async () => {
    c = await buildTestApp();
    const res = await call("GET", "/v1/openapi.json");
    expect(res.statusCode, res.body).toBe(200);
    doc = res.json<Document>();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("needs a token, like every /v1 route", async () => {
    const res = await c.controller.app.inject({ method: "GET", url: "/v1/openapi.json" });
    expect(res.statusCode).toBe(401);
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("documents every route with a summary, tags, who may call it, its answer and the error answers", () => {
    for (const [key, access] of Object.entries(ROUTE_ROLES)) {
      const op = operationOf(doc, key);
      expect(op, `${key} is not in the document`).toBeDefined();
      if (!op) continue;
      expect(op.summary, key).toBeTruthy();
      expect(op.tags?.length, key).toBeGreaterThan(0);
      expect(op["x-gild-access"], key).toBe(access);
      const statuses = Object.keys(op.responses);
      expect(statuses.filter((s) => s.startsWith("2")).length, key).toBe(1);
      expect(statuses, key).toEqual(expect.arrayContaining(["4XX", "5XX"]));
      for (const r of Object.values(op.responses)) expect(r.description, key).not.toBe("Default Response");
    }
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item).map(
        (m) => `${m.toUpperCase()} ${path.replace(/\{([A-Za-z]+)\}/g, ":$1").replace(/\{\*\}$/, "*")}`,
      ),
    );
    expect(documented.filter((k) => !(k in ROUTE_ROLES))).toEqual([]);
  });

  it("says which answers stream, and as what", () => {
    const contentOf = (key: string) => Object.keys(operationOf(doc, key)?.responses["200"]?.content ?? {});
    for (const key of [
      "POST /v1/images",
      "POST /v1/images/:line/update",
      "POST /v1/images/:line/:version/push",
      "POST /v1/apps/:name/deploy",
      "POST /v1/apps/:name/hosts",
      "POST /v1/apps/:name/rollback",
    ])
      expect(contentOf(key), key).toEqual(["application/x-ndjson"]);
    expect(contentOf("GET /v1/rollouts/:id/events")).toEqual(["text/event-stream"]);
    expect(contentOf("GET /v1/host-updates/:id/events")).toEqual(["text/event-stream"]);
    expect(contentOf("GET /metrics")).toEqual(["text/plain"]);
  });

  it("describes what the routes really answer", async () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    const check = async (method: string, url: string, key: string, payload?: object) => {
      const res = await call(method, url, payload);
      const op = operationOf(doc, key);
      const status = op?.responses[String(res.statusCode)]
        ? String(res.statusCode)
        : `${String(res.statusCode)[0]}XX`;
      const schema = op?.responses[status]?.content?.["application/json"]?.schema;
      expect(schema, `${key} answered ${res.statusCode}, which the document does not describe`).toBeDefined();
      const validate = ajv.compile(schema as object);
      expect(validate(res.json()) ? [] : validate.errors, `${method} ${url}: ${res.body}`).toEqual([]);
      return res.json();
    };
    const created = await check("POST", "/v1/tokens", "POST /v1/tokens", { ttl: "1h" });
    const joined = await check("POST", "/v1/enroll", "POST /v1/enroll", {
      token: created.token,
      name: "web-1",
      labels: { role: "web" },
    });
    expect(joined.name).toBe("web-1");
    await check("PUT", "/v1/maintenance-windows/role=web", "PUT /v1/maintenance-windows/:target", {
      spec: "Sat 02:00-05:00 UTC",
    });
    await check("POST", "/v1/apps", "POST /v1/apps", {
      name: "blog",
      image: "php",
      hosts: ["web-1"],
      command: ["/usr/bin/php", "-S", "0.0.0.0:80"],
      port: 80,
      health: { http: "http://127.0.0.1:80/" },
    });
    await check("POST", "/v1/users", "POST /v1/users", { name: "ann", role: "operator", expires: "90d" });
    await check("POST", "/v1/users/ann/token", "POST /v1/users/:name/token", {});
    for (const [url, key] of [
      ["/healthz", "GET /healthz"],
      ["/v1/enroll/ca", "GET /v1/enroll/ca"],
      ["/v1/hosts", "GET /v1/hosts"],
      ["/v1/hosts/web-1", "GET /v1/hosts/:name"],
      ["/v1/tokens", "GET /v1/tokens"],
      ["/v1/users", "GET /v1/users"],
      ["/v1/apps", "GET /v1/apps"],
      ["/v1/apps/blog", "GET /v1/apps/:name"],
      ["/v1/images?hosts=1", "GET /v1/images"],
      ["/v1/rollouts", "GET /v1/rollouts"],
      ["/v1/host-updates", "GET /v1/host-updates"],
      ["/v1/maintenance-windows", "GET /v1/maintenance-windows"],
      ["/v1/audit", "GET /v1/audit"],
      ["/v1/hosts/nobody", "GET /v1/hosts/:name"],
    ] as const)
      await check("GET", url, key);
    // A refused body: the error answer with its problems.
    await check("POST", "/v1/rollouts", "POST /v1/rollouts", { image: 7, bogus: true });
    await check("DELETE", "/v1/users/ann", "DELETE /v1/users/:name");
    await check("DELETE", "/v1/maintenance-windows/role=web", "DELETE /v1/maintenance-windows/:target");
  });

  it("stops the app from building when a route has no summary, tags or responses", async () => {
    const app = Fastify();
    await installOpenApi(app);
    expect(() => app.get("/v1/undocumented", async () => ({}))).toThrow(
      /GET \/v1\/undocumented lacks a summary, tags, a 2xx response, the error responses/,
    );
    await app.close();
  });
});

describe("docs/api.md", () => {
  it("is rendered from the document and current (pnpm docs:api)", async () => {
    const c = await buildTestApp();
    try {
      const res = await c.controller.app.inject({
        method: "GET",
        url: "/v1/openapi.json",
        headers: { authorization: `Bearer ${c.adminToken}` },
      });
      const committed = readFileSync(new URL("../../../docs/api.md", import.meta.url), "utf8");
      expect(committed).toBe(renderApiDocs(res.json()));
      for (const route of ["POST /v1/rollouts", "GET /v1/openapi.json", "GET /metrics", "POST /v1/users"])
        expect(committed).toContain(`### \`${route}\``);
    } finally {
      await c.destroy();
    }
  });
});
