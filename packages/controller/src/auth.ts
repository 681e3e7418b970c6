import { GildError } from "@gild/core";
import type { FastifyInstance } from "fastify";
import type { ConnectionGate } from "./connection-gate.js";
import type { RequestAudit } from "./request-audit.js";
import { bearerSecret, hashSecret, secretMatches } from "./secrets.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Who makes the request: `admin:<user>` (the CLI sends its user), or a join token id. */
    actor: string;
    /** One line for the audit log about what a mutating request did. */
    auditSummary: string | undefined;
  }
}

const PUBLIC_PATHS = new Set(["/healthz", "/v1/enroll", "/v1/enroll/ca"]);
const METRICS_PATH = "/metrics";
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Every request but /healthz and enrollment carries the admin token (Authorization: Bearer); GET
 * /metrics also takes the scrape token (metrics.token), which opens nothing else. Every
 * mutating request that got past it is recorded in the audit log with who, what, when and the result.
 */
export function installAuth(
  app: FastifyInstance,
  deps: { adminToken: string; metricsToken?: string; audit: RequestAudit; connections: ConnectionGate },
): void {
  const expected = hashSecret(deps.adminToken);
  const scraper = deps.metricsToken ? hashSecret(deps.metricsToken) : undefined;
  app.decorateRequest("actor", "");
  app.decorateRequest("auditSummary", undefined);
  app.addHook("onRequest", async (req) => {
    deps.connections.requested(req.socket);
    const path = req.url.split("?")[0] ?? "";
    const name =
      String(req.headers["x-gild-actor"] ?? "")
        .replace(/[^\w.@-]/g, "")
        .slice(0, 64) || "unknown";
    req.actor = `admin:${name}`;
    if (PUBLIC_PATHS.has(path)) {
      req.actor = "anonymous";
      return;
    }
    const presented = bearerSecret(req.headers.authorization);
    // The scrape token reads the metrics and nothing else.
    if (path === METRICS_PATH && scraper && presented.length > 0 && secretMatches(presented, scraper)) {
      req.actor = "metrics";
      deps.connections.authenticated(req.socket);
      return;
    }
    if (presented.length === 0 || !secretMatches(presented, expected)) {
      req.actor = "unauthenticated";
      deps.audit.refusedRequest(req.socket.remoteAddress);
      throw new GildError(
        "GILD_UNAUTHENTICATED",
        presented.length === 0 ? "no admin token presented" : "wrong admin token",
        {
          hint: "run gild on the controller as root (it reads /var/lib/gild/controller/admin.token), or set GILD_TOKEN",
        },
      );
    }
    deps.connections.authenticated(req.socket);
  });
  app.addHook("onResponse", async (req, reply) => {
    // Only what an authenticated caller (or enrollment, with its token) did: refused requests are counted.
    if (!MUTATING.has(req.method) || req.actor === "unauthenticated") return;
    deps.audit.record({
      actor: req.actor || "anonymous",
      method: req.method,
      path: req.url.split("?")[0] ?? req.url,
      status: reply.statusCode,
      summary: req.auditSummary ?? null,
    });
  });
}
