import type { SessionView } from "@gild/api-client";
import { GildError } from "@gild/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { DashboardSessions } from "../dashboard-sessions.js";
import { jsonResponses } from "../route-schemas.js";
import { hashSecret, secretMatches } from "../secrets.js";
import type { Services } from "../services.js";
import { identifyToken } from "../token-identity.js";
import { exactObject, type JsonSchema } from "../view-schemas.js";

const tags = ["session"];
const nullable = (type: string, description: string): JsonSchema => ({ type: [type, "null"], description });
const sessionSchema = exactObject({
  user: { type: "string", description: "who is signed in (a user's name, or admin)" },
  role: { type: "string", enum: ["viewer", "operator", "admin"] },
  expiresAt: nullable("integer", "when the session ends (ms since the epoch); null without a session"),
  csrfToken: nullable(
    "string",
    "send it as x-gild-csrf on every change made with the cookie; null without a session",
  ),
});

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
        summary: "Sign in to the dashboard",
        description:
          "Trades a user's token (or the bootstrap admin token) for an HttpOnly, SameSite=Strict session cookie (`__Host-gild-session`) and the session's CSRF token. Public: the token in the body is the credential.",
        tags,
        response: jsonResponses("the session; the cookie is in Set-Cookie", sessionSchema),
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

  app.get(
    "/v1/session",
    {
      schema: {
        summary: "Who is signed in",
        description:
          "The caller's name and role, and with a session cookie its expiry and CSRF token (the page keeps it in memory only).",
        tags,
        response: jsonResponses("the caller", sessionSchema),
      },
    },
    async (req, reply): Promise<SessionView> => {
      const session = req.sessionId ? deps.sessions.find(req.sessionId) : undefined;
      reply.header("cache-control", "no-store");
      return {
        user: req.actor,
        role: req.role ?? "viewer",
        expiresAt: session?.expiresAt ?? null,
        csrfToken: req.sessionId ? deps.sessions.csrfTokenOf(req.sessionId) : null,
      };
    },
  );

  app.delete(
    "/v1/session",
    {
      schema: {
        summary: "Sign out of the dashboard",
        description: "Ends the session of the cookie sent and clears the cookie; false without a session.",
        tags,
        response: jsonResponses("whether a session ended", exactObject({ signedOut: { type: "boolean" } })),
      },
    },
    async (req, reply) => {
      if (!req.sessionId) return { signedOut: false };
      deps.sessions.close(req.sessionId);
      req.auditSummary = "signed out of the dashboard";
      return reply.header("set-cookie", deps.sessions.clearCookie()).send({ signedOut: true });
    },
  );
}
