import type { SessionView } from "@gild/api-client";
import { GildError } from "@gild/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { DashboardSessions } from "../dashboard-sessions.js";
import { hashSecret, secretMatches } from "../secrets.js";
import type { Services } from "../services.js";
import { identifyToken } from "../token-identity.js";

/** What these routes use. */
export interface SessionRouteDeps extends Pick<Services, "store" | "audit"> {
  sessions: DashboardSessions;
  adminToken: string;
  now: () => number;
}

/**
 * The dashboard's sign-in: POST /v1/session trades a user's token (or the bootstrap admin token) for
 * a session cookie; GET says who the session is and gives the page its CSRF token; DELETE signs out.
 * POST is public (the token in its body is the credential, as a join token is for enrollment).
 */
export async function sessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): Promise<void> {
  const adminHash = hashSecret(deps.adminToken);
  const refuse = (req: FastifyRequest, message: string): never => {
    req.actor = "unauthenticated";
    deps.audit.refusedRequest(req.socket.remoteAddress);
    throw new GildError("GILD_UNAUTHENTICATED", message, {
      hint: "sign in with a user's token: an admin makes one with gild user add <name> --role <role>",
    });
  };
  const identityOf = (token: string) =>
    identifyToken(hashSecret(token), secretMatches(token, adminHash), {
      adminHash,
      users: deps.store.users,
      now: deps.now,
    });

  app.post<{ Body: { token: string } }>(
    "/v1/session",
    {
      schema: {
        body: {
          type: "object",
          additionalProperties: false,
          required: ["token"],
          properties: { token: { type: "string", minLength: 1, maxLength: 512 } },
        },
      },
    },
    async (req, reply) => {
      const identity = identityOf(req.body.token.trim());
      if (typeof identity === "string") return refuse(req, identity);
      const opened = deps.sessions.open(identity);
      req.actor = identity.actor;
      req.auditSummary = `signed in to the dashboard (${identity.role})`;
      const answer: SessionView = {
        user: identity.actor,
        role: identity.role,
        expiresAt: opened.record.expiresAt,
        csrfToken: opened.csrfToken,
      };
      return reply
        .header("set-cookie", deps.sessions.setCookie(opened))
        .header("cache-control", "no-store")
        .send(answer);
    },
  );

  app.get("/v1/session", async (req, reply): Promise<SessionView> => {
    const session = req.sessionId ? deps.sessions.find(req.sessionId) : undefined;
    reply.header("cache-control", "no-store");
    return {
      user: req.actor,
      role: req.role ?? "viewer",
      expiresAt: session?.expiresAt ?? null,
      csrfToken: req.sessionId ? deps.sessions.csrfTokenOf(req.sessionId) : null,
    };
  });

  app.delete("/v1/session", async (req, reply) => {
    if (!req.sessionId) return { signedOut: false };
    deps.sessions.close(req.sessionId);
    req.auditSummary = "signed out of the dashboard";
    return reply.header("set-cookie", deps.sessions.clearCookie()).send({ signedOut: true });
  });
}
