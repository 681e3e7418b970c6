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

// /v1/agent/* is for agents: each such route authenticates the host credential itself (host-auth.ts).
const PUBLIC_PATHS = new Set(["/healthz", "/v1/enroll", "/v1/enroll/ca", "/v1/agent/certificate"]);
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Every request but /healthz and enrollment carries the admin token (Authorization: Bearer). Every
 * mutating request that got past it is recorded in the audit log with who, what, when and the result.
 */
export function installAuth(
  app: FastifyInstance,
  deps: { adminToken: string; audit: RequestAudit; connections: ConnectionGate },
): void {
  const expected = hashSecret(deps.adminToken);
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
