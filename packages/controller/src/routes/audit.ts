import type { FastifyInstance } from "fastify";
import type { Services } from "../services.js";

/** What these routes use. */
export type AuditRouteDeps = Pick<Services, "audit" | "store">;

/** A fastify plugin: register it with its dependencies (`app.register(auditRoutes, deps)`). */
export async function auditRoutes(app: FastifyInstance, services: AuditRouteDeps): Promise<void> {
  app.get<{ Querystring: { limit?: string; since?: string } }>("/v1/audit", async (req) => {
    const limit = Math.min(Math.max(Number(req.query.limit ?? 100) || 100, 1), 10_000);
    const since = Number(req.query.since ?? 0) || 0;
    return {
      entries: services.store.audit.list({ limit, since }),
      // Requests refused for want of a credential are not audited one by one, only counted.
      refusedSinceStart: services.audit.refusedCount,
    };
  });
}
