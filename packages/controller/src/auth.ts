import { GildError } from "@gild/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ConnectionGate } from "./connection-gate.js";
import { type DashboardSessions, sameOrigin } from "./dashboard-sessions.js";
import type { RequestAudit } from "./request-audit.js";
import { ROUTE_ROLES, roleAllows, routeKey } from "./route-roles.js";
import { bearerSecret, hashSecret, secretMatches } from "./secrets.js";
import type { Role, UsersRepo } from "./store/users-repo.js";
import { type Identity, identifyToken } from "./token-identity.js";

declare module "fastify" {
  interface FastifyRequest {
    /**
     * Who makes the request, as authenticated: a user's name, `admin` (the bootstrap admin token),
     * `metrics` (the scrape token), `join-token:<id>` (enrollment), `anonymous` or `unauthenticated`.
     * Never a name the client claims.
     */
    actor: string;
    /** The caller's role, once authenticated (null for public routes and the scrape token). */
    role: Role | null;
    /** One line for the audit log about what a mutating request did. */
    auditSummary: string | undefined;
    /** The dashboard session's cookie id when the request was authenticated by it, else "". */
    sessionId: string;
  }
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Names a user may not take: they are what the audit calls other callers. */
export const RESERVED_ACTORS = new Set(["admin", "metrics", "anonymous", "unauthenticated"]);

/**
 * Every route has an access rule in ROUTE_ROLES (route-roles.ts; a route without one makes the app
 * fail to build). A caller presents a token (Authorization: Bearer): the bootstrap admin token
 * (admin.token), a user's token (its role), or on GET /metrics the scrape token; or the dashboard's
 * session cookie (dashboard-sessions.ts), which holds while the token it was opened with does, and
 * whose mutations must carry the session's CSRF token and come from this origin. A role below the
 * route's is refused with 403 GILD_FORBIDDEN. Every mutating request that got past it is recorded in
 * the audit log with the authenticated caller, what, when and the result.
 */
export function installAuth(
  app: FastifyInstance,
  deps: {
    adminToken: string;
    metricsToken?: string;
    users: UsersRepo;
    sessions: DashboardSessions;
    audit: RequestAudit;
    connections: ConnectionGate;
    now?: () => number;
  },
): void {
  const admin = hashSecret(deps.adminToken);
  const scraper = deps.metricsToken ? hashSecret(deps.metricsToken) : undefined;
  const now = deps.now ?? Date.now;
  app.decorateRequest("actor", "");
  app.decorateRequest("role", null);
  app.decorateRequest("auditSummary", undefined);
  app.decorateRequest("sessionId", "");
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) {
      if (!ROUTE_ROLES[routeKey(method, route.url)])
        throw new Error(`route ${method} ${route.url} has no access rule in route-roles.ts`);
    }
  });
  /** Who a token's hash stands for, or why it stands for nobody. */
  const identify = (hash: string, isAdmin: boolean): Identity | string =>
    identifyToken(hash, isAdmin, { adminHash: admin, users: deps.users, now });
  /** A session's identity, as long as its user still has the token it was opened with and that role. */
  const sessionIdentity = (sessionId: string): Identity | string => {
    const session = deps.sessions.find(sessionId);
    if (!session) return "the session ended: sign in again";
    const identity = identify(session.tokenHash, session.actor === "admin" && session.tokenHash === admin);
    if (typeof identity === "string" || identity.actor !== session.actor || identity.role !== session.role) {
      deps.sessions.close(sessionId);
      return "the session ended (its user was removed or given a new token): sign in again";
    }
    return identity;
  };
  const refuse = (req: FastifyRequest, message: string): never => {
    req.actor = "unauthenticated";
    deps.audit.refusedRequest(req.socket.remoteAddress);
    throw new GildError("GILD_UNAUTHENTICATED", message, {
      hint: "present a user's token (gild user add), or run gild on the controller as root (it reads /var/lib/gild/controller/admin.token); set GILD_TOKEN elsewhere",
    });
  };
  app.addHook("onRequest", async (req) => {
    deps.connections.requested(req.socket);
    // A path no route matches needs a credential too, so that what exists is not told to strangers.
    const pattern = req.routeOptions.url;
    const access = pattern === undefined ? "viewer" : (ROUTE_ROLES[routeKey(req.method, pattern)] ?? "admin");
    if (access === "public" || access === "host") {
      // A host route names the host it authenticated (host-auth.ts) once it did.
      req.actor = "anonymous";
      return;
    }
    const presented = bearerSecret(req.headers.authorization);
    let identity: Identity | string;
    if (presented.length > 0) {
      if (access === "metrics" && scraper && secretMatches(presented, scraper)) {
        req.actor = "metrics";
        deps.connections.authenticated(req.socket);
        return;
      }
      identity = identify(hashSecret(presented), secretMatches(presented, admin));
    } else {
      const sessionId = deps.sessions.cookieOf(req);
      if (sessionId.length === 0) return refuse(req, "no token presented");
      identity = sessionIdentity(sessionId);
      if (typeof identity !== "string") {
        req.sessionId = sessionId;
        // The cookie goes with every request to this origin, wherever the page that makes it came from:
        // a change must also prove it comes from the dashboard itself.
        if (
          MUTATING.has(req.method) &&
          !(deps.sessions.csrfMatches(sessionId, req.headers["x-gild-csrf"]) && sameOrigin(req))
        ) {
          req.actor = identity.actor;
          throw new GildError(
            "GILD_CSRF_REJECTED",
            "a change made with the dashboard's session must come from the dashboard and carry its x-gild-csrf token",
            {
              hint: "reload the dashboard; scripts use a token (Authorization: Bearer) instead of the cookie",
            },
          );
        }
      }
    }
    if (typeof identity === "string") return refuse(req, identity);
    req.actor = identity.actor;
    const role = identity.role;
    req.role = role;
    deps.connections.authenticated(req.socket);
    const needed = access === "metrics" ? "viewer" : access;
    if (!roleAllows(role, needed))
      throw new GildError("GILD_FORBIDDEN", `${req.actor} is ${role}; this needs ${needed}`, {
        hint:
          needed === "admin"
            ? "ask an admin: users, hosts, join tokens, host updates and maintenance windows are theirs"
            : "ask an admin for the operator role (gild user add <name> --role operator)",
      });
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
