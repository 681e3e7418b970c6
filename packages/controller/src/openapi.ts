import fastifySwagger from "@fastify/swagger";
import { GILD_VERSION } from "@gild/core";
import type { FastifyInstance, RouteOptions } from "fastify";
import { ROUTE_ROLES, routeKey } from "./route-roles.js";
import { jsonResponses } from "./route-schemas.js";
import type { JsonSchema } from "./view-schemas.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * What the route takes, for the document only: the handler or its service checks it, listing every
     * problem under its own error code, so fastify must not refuse it first (see installOpenApi).
     */
    documented?: { body?: JsonSchema; querystring?: JsonSchema };
  }
}

/** The route groups, in the document's order. */
export const API_TAGS = [
  { name: "hosts", description: "Joined hosts: identity, liveness, versions, images, apps, windows." },
  {
    name: "enrollment",
    description: "How an agent joins: the CA, and trading a join token for a credential.",
  },
  { name: "tokens", description: "One-time join tokens." },
  { name: "users", description: "Named operators and their roles." },
  { name: "session", description: "The dashboard's sign-in: a token traded for a session cookie." },
  { name: "images", description: "Golden image and code lines: make, update, push, evict, remove versions." },
  { name: "apps", description: "Apps in systemd-nspawn: definitions, deploys, hosts, rollbacks, logs." },
  { name: "rollouts", description: "Canary rollouts of an image version across the fleet." },
  { name: "host-updates", description: "Commands run on hosts wave by wave (apt upgrades, reboots)." },
  { name: "maintenance-windows", description: "When hosts may be switched, updated or rebooted." },
  { name: "audit", description: "Who changed what." },
  { name: "meta", description: "Health, metrics and this document." },
  { name: "dashboard", description: "The web dashboard's page and files (no data)." },
];

/** Why a route fails to build: what its schema lacks for the document, or undefined. */
export function missingRouteDocs(route: Pick<RouteOptions, "method" | "url" | "schema">): string | undefined {
  const schema = route.schema;
  const statuses = Object.keys((schema?.response ?? {}) as Record<string, unknown>);
  const lacks = [
    schema?.summary ? null : "a summary",
    schema?.tags && schema.tags.length > 0 ? null : "tags",
    statuses.some((s) => s.startsWith("2")) ? null : "a 2xx response",
    statuses.includes("4xx") && statuses.includes("5xx") ? null : "the error responses",
  ].filter((l) => l !== null);
  return lacks.length === 0
    ? undefined
    : `route ${[route.method].flat().join(",")} ${route.url} lacks ${lacks.join(", ")}`;
}

/**
 * The OpenAPI 3.1 description of the API (@fastify/swagger), from the route schemas, served at
 * GET /v1/openapi.json. A route without a summary, tags and responses stops the controller from
 * building, as one without a role does (auth.ts). Call before any route is registered.
 */
export async function installOpenApi(app: FastifyInstance): Promise<void> {
  // Response schemas are documentation: answers are written with JSON.stringify, as before they had
  // schemas. fast-json-stringify would drop every field a schema does not list and turn a null into ""
  // or 0 where a schema says string or integer; the views change with the product, and a field lost on
  // the wire is a silent bug. (The document is checked against real answers by the controller's tests.)
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook("onRoute", (route) => {
    if (route.method === "HEAD") return;
    const missing = missingRouteDocs(route);
    if (missing) throw new Error(`${missing} (every route is documented: see openapi.ts)`);
  });
  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "gild controller API",
        version: GILD_VERSION,
        description:
          "The HTTP API the gild CLI drives. Every request but the public ones presents a token (Authorization: Bearer): a user's (gild user add), the bootstrap admin token, or on /metrics the scrape token; the dashboard sends its session cookie instead, with x-gild-csrf on changes. `x-gild-access` says who may call an operation: public, metrics, or the least role (viewer < operator < admin). Errors answer `{error: {code, message, hint?, details?}}` with the code's HTTP status (docs/errors.md).",
        license: { name: "Apache-2.0", identifier: "Apache-2.0" },
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", description: "a user's or the admin token" },
        },
      },
      security: [{ bearer: [] }],
      tags: API_TAGS,
    },
    transform: ({ schema, url, route }) => {
      const access = ROUTE_ROLES[routeKey([route.method].flat()[0] ?? "GET", url)];
      return {
        schema: {
          ...schema,
          ...(route.config?.documented ?? {}),
          ...(access === "public" ? { security: [] } : {}),
          "x-gild-access": access,
        },
        url,
      };
    },
  });
  app.get(
    "/v1/openapi.json",
    {
      schema: {
        summary: "This API's OpenAPI 3.1 description",
        description: "Generated from the route schemas; docs/api.md is rendered from it.",
        tags: ["meta"],
        response: jsonResponses("the document", { type: "object", additionalProperties: true }),
      },
    },
    async () => app.swagger(),
  );
}
