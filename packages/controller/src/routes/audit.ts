import type { FastifyInstance } from "fastify";
import { jsonResponses } from "../route-schemas.js";
import type { Services } from "../services.js";
import { auditEntrySchema, exactObject } from "../view-schemas.js";

/** What these routes use. */
export type AuditRouteDeps = Pick<Services, "audit" | "store">;

/** A fastify plugin: register it with its dependencies (`app.register(auditRoutes, deps)`). */
export async function auditRoutes(app: FastifyInstance, services: AuditRouteDeps): Promise<void> {
  app.get<{ Querystring: { limit?: string; since?: string } }>(
    "/v1/audit",
    {
      schema: {
        summary: "Read the audit log",
        description:
          "Every mutating request an authenticated caller made: who, what, when, the answer's status.",
        tags: ["audit"],
        response: jsonResponses(
          "the entries, newest first",
          exactObject({
            entries: { type: "array", items: auditEntrySchema },
            refusedSinceStart: {
              type: "integer",
              description:
                "requests refused for want of a credential since the controller started (counted, not listed)",
            },
          }),
        ),
      },
      // Read leniently by the handler (a bad number means the default), so only documented here.
      config: {
        documented: {
          querystring: {
            type: "object",
            properties: {
              limit: { type: "integer", minimum: 1, maximum: 10_000, description: "at most this many [100]" },
              since: {
                type: "integer",
                description: "entries at or after this time, ms since the epoch [0]",
              },
            },
          },
        },
      },
    },
    async (req) => {
      const limit = Math.min(Math.max(Number(req.query.limit ?? 100) || 100, 1), 10_000);
      const since = Number(req.query.since ?? 0) || 0;
      return {
        entries: services.store.audit.list({ limit, since }),
        // Requests refused for want of a credential are not audited one by one, only counted.
        refusedSinceStart: services.audit.refusedCount,
      };
    },
  );
}
