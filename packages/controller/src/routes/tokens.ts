import { DURATION_LIMITS, formatDuration, GildError, parseDuration } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { jsonResponses, pathParams, removedSchema } from "../route-schemas.js";
import type { Services } from "../services.js";
import { exactObject, tokenSchema } from "../view-schemas.js";

/** What these routes use. */
export type TokenRouteDeps = Pick<Services, "config" | "enrollment" | "store">;

/** A fastify plugin: register it with its dependencies (`app.register(tokenRoutes, deps)`). */
export async function tokenRoutes(app: FastifyInstance, services: TokenRouteDeps): Promise<void> {
  const tags = ["tokens"];
  app.post<{ Body: { ttl?: string } }>(
    "/v1/tokens",
    {
      schema: {
        summary: "Make a join token",
        description: "A one-time token a host joins with (gild agent join); shown once.",
        tags,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            ttl: {
              type: "string",
              maxLength: 32,
              description: "how long it is good for (1h, 7d); the default is the controller's",
            },
          },
        },
        response: jsonResponses(
          "the token",
          exactObject({
            token: { type: "string" },
            id: { type: "string" },
            expiresAt: { type: "integer", description: "ms since the epoch" },
            controllerUrl: { type: "string" },
          }),
        ),
      },
    },
    async (req) => {
      const ttlMs = req.body?.ttl === undefined ? undefined : parseDuration(req.body.ttl, "token ttl");
      if (ttlMs !== undefined && ttlMs > DURATION_LIMITS.tokenTtl)
        throw new GildError(
          "GILD_BAD_REQUEST",
          `token ttl must be at most ${formatDuration(DURATION_LIMITS.tokenTtl)}`,
        );
      const created = services.enrollment.createToken({
        ...(ttlMs === undefined ? {} : { ttlMs }),
        createdBy: req.actor,
      });
      req.auditSummary = `join token ${created.id}`;
      return {
        token: created.token,
        id: created.id,
        expiresAt: created.expiresAt,
        controllerUrl: services.config.publicUrl,
      };
    },
  );

  app.get(
    "/v1/tokens",
    {
      schema: {
        summary: "List join tokens",
        tags,
        response: jsonResponses(
          "every join token (never the secret)",
          exactObject({ tokens: { type: "array", items: tokenSchema } }),
        ),
      },
    },
    async () => ({
      tokens: services.store.tokens.list().map((t) => ({
        id: t.id,
        createdAt: t.createdAt,
        expiresAt: t.expiresAt,
        createdBy: t.createdBy,
        usedAt: t.usedAt,
        usedBy: t.usedBy,
      })),
    }),
  );

  app.delete<{ Params: { id: string } }>(
    "/v1/tokens/:id",
    {
      schema: {
        summary: "Revoke a join token",
        tags,
        params: pathParams({ id: "the token's id" }),
        response: jsonResponses("revoked", removedSchema("the token's id")),
      },
    },
    async (req) => {
      if (!services.store.tokens.delete(req.params.id))
        throw new GildError("GILD_NOT_FOUND", `no join token ${req.params.id}`);
      req.auditSummary = `revoked join token ${req.params.id}`;
      return { removed: req.params.id };
    },
  );
}
