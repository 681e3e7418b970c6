import type { UserView } from "@gild/api-client";
import { formatDuration, GildError, MAX_DURATION_MS, parseDuration } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { RESERVED_ACTORS } from "../auth.js";
import type { DashboardSessions } from "../dashboard-sessions.js";
import { jsonResponses, pathParams, removedSchema } from "../route-schemas.js";
import { hashSecret, newSecret } from "../secrets.js";
import type { Services } from "../services.js";
import { ROLES, type Role, type UserRecord } from "../store/users-repo.js";
import { exactObject, userSchema } from "../view-schemas.js";

/** What these routes use. */
export interface UserRouteDeps extends Pick<Services, "store"> {
  /** A user removed or given a new token is signed out of the dashboard too. */
  sessions: DashboardSessions;
  now: () => number;
}

const NAME = /^[a-z][a-z0-9._-]{0,62}$/;

function view(user: UserRecord): UserView {
  return {
    name: user.name,
    role: user.role,
    createdAt: user.createdAt,
    createdBy: user.createdBy,
    tokenCreatedAt: user.tokenCreatedAt,
    expiresAt: user.expiresAt,
  };
}

function checkRole(role: unknown): Role {
  if (typeof role !== "string" || !ROLES.includes(role as Role))
    throw new GildError("GILD_BAD_REQUEST", `role must be one of ${ROLES.join(", ")}`, {
      hint: "viewer reads; operator drives images, apps and rollouts; admin also manages users, hosts and join tokens",
    });
  return role as Role;
}

/** An expiry ("90d") as an absolute time, or null for a token that does not expire. */
function expiryOf(expires: unknown, now: number): number | null {
  if (expires === undefined || expires === null || expires === "never") return null;
  if (typeof expires !== "string")
    throw new GildError("GILD_BAD_REQUEST", "expires must be a duration or never");
  const ms = parseDuration(expires, "expires");
  if (ms <= 0 || ms > MAX_DURATION_MS)
    throw new GildError(
      "GILD_BAD_REQUEST",
      `expires must be more than 0 and at most ${formatDuration(MAX_DURATION_MS)}`,
    );
  return now + ms;
}

const expiresDoc = {
  type: "string",
  description: "how long the token works (90d), or never [never]",
  examples: ["90d", "never"],
};
const withToken = exactObject({
  user: userSchema,
  token: { type: "string", description: "the user's token (gusr_...), shown this once" },
});

function userToken(): { token: string; tokenHash: string } {
  const token = `gusr_${newSecret()}`;
  return { token, tokenHash: hashSecret(token) };
}

/**
 * Named operators (admin only): a token is shown once, when the user is made or the token rotated;
 * the store keeps its sha256. Removing a user or rotating its token ends the old token at once.
 */
export async function userRoutes(app: FastifyInstance, deps: UserRouteDeps): Promise<void> {
  const users = deps.store.users;
  const find = (name: string): UserRecord => {
    const user = users.byName(name);
    if (!user)
      throw new GildError("GILD_USER_NOT_FOUND", `no user ${name}`, {
        hint: "list them with `gild user ls`",
      });
    return user;
  };

  const tags = ["users"];
  const params = pathParams({ name: "the user's name" });
  app.get(
    "/v1/users",
    {
      schema: {
        summary: "List users",
        tags,
        response: jsonResponses(
          "every user (never a token)",
          exactObject({ users: { type: "array", items: userSchema } }),
        ),
      },
    },
    async () => ({ users: users.list().map(view) }),
  );

  app.post<{ Body: { name?: unknown; role?: unknown; expires?: unknown } }>(
    "/v1/users",
    {
      schema: {
        summary: "Add a user",
        description: "Makes a named operator with a role and a token, shown once in the answer.",
        tags,
        response: jsonResponses("the user and its token", withToken, 201),
      },
      // Checked by the handler (GILD_BAD_REQUEST with what a name, role or expiry must be): documented only.
      config: {
        documented: {
          body: {
            type: "object",
            required: ["name", "role"],
            additionalProperties: false,
            properties: {
              name: {
                type: "string",
                pattern: "^[a-z][a-z0-9._-]{0,62}$",
                description: "not admin, metrics, anonymous or unauthenticated",
              },
              role: { type: "string", enum: [...ROLES] },
              expires: expiresDoc,
            },
          },
        },
      },
    },
    async (req, reply) => {
      const body = req.body ?? {};
      const name = typeof body.name === "string" ? body.name : "";
      if (RESERVED_ACTORS.has(name))
        throw new GildError(
          "GILD_BAD_REQUEST",
          `${name} is what the audit calls another caller: choose another name`,
        );
      if (!NAME.test(name))
        throw new GildError(
          "GILD_BAD_REQUEST",
          "a user name is 1 to 63 characters: lowercase letters, digits, '.', '_' and '-', starting with a letter",
        );
      const role = checkRole(body.role);
      const now = deps.now();
      const expiresAt = expiryOf(body.expires, now);
      if (users.byName(name))
        throw new GildError("GILD_USER_EXISTS", `user ${name} exists`, {
          hint: `give it a new token with \`gild user token ${name} --rotate\`, or remove it first`,
        });
      const { token, tokenHash } = userToken();
      const user: UserRecord = {
        name,
        role,
        tokenHash,
        createdAt: now,
        createdBy: req.actor,
        tokenCreatedAt: now,
        expiresAt,
      };
      users.insert(user);
      req.auditSummary = `user ${name} (${role})`;
      return reply.code(201).send({ user: view(user), token });
    },
  );

  app.post<{ Params: { name: string }; Body: { expires?: unknown } }>(
    "/v1/users/:name/token",
    {
      schema: {
        summary: "Give a user a new token",
        description: "The old token stops working at once; the new one is shown once in the answer.",
        tags,
        params,
        response: jsonResponses("the user and its new token", withToken),
      },
      config: {
        documented: {
          body: { type: "object", additionalProperties: false, properties: { expires: expiresDoc } },
        },
      },
    },
    async (req) => {
      const user = find(req.params.name);
      const now = deps.now();
      const expiresAt = expiryOf(req.body?.expires, now);
      const { token, tokenHash } = userToken();
      users.setToken(user.name, { tokenHash, tokenCreatedAt: now, expiresAt });
      deps.sessions.endFor(user.name);
      req.auditSummary = `new token for user ${user.name}`;
      return { user: view({ ...user, tokenHash, tokenCreatedAt: now, expiresAt }), token };
    },
  );

  app.delete<{ Params: { name: string } }>(
    "/v1/users/:name",
    {
      schema: {
        summary: "Remove a user",
        description: "Its token stops working at once.",
        tags,
        params,
        response: jsonResponses("removed", removedSchema("the user's name")),
      },
    },
    async (req) => {
      const user = find(req.params.name);
      users.delete(user.name);
      deps.sessions.endFor(user.name);
      req.auditSummary = `removed user ${user.name}`;
      return { removed: user.name };
    },
  );
}
