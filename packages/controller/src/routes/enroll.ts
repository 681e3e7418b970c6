import type { FastifyInstance } from "fastify";
import type { Services } from "../services.js";

/** Enrollment: the CA (public, checked by agents against the token's pin) and the join exchange. */
/** What these routes use. */
export type EnrollRouteDeps = Pick<Services, "enrollment" | "log" | "tls">;

/** A fastify plugin: register it with its dependencies (`app.register(enrollRoutes, deps)`). */
export async function enrollRoutes(app: FastifyInstance, services: EnrollRouteDeps): Promise<void> {
  app.get("/v1/enroll/ca", async () => ({ caPem: services.tls.caPem }));

  app.post<{ Body: { token: string; name: string; labels?: Record<string, string> } }>(
    "/v1/enroll",
    {
      schema: {
        body: {
          type: "object",
          required: ["token", "name"],
          additionalProperties: false,
          properties: {
            token: { type: "string", maxLength: 256 },
            name: { type: "string", maxLength: 63 },
            labels: { type: "object", additionalProperties: { type: "string" }, maxProperties: 64 },
          },
        },
      },
    },
    async (req) => {
      req.actor = `join-token:${req.body.token.split(".")[1] ?? "?"}`;
      const result = services.enrollment.join({
        token: req.body.token,
        name: req.body.name,
        labels: req.body.labels ?? {},
      });
      req.auditSummary = `host ${result.name} joined as ${result.hostId}`;
      services.log.info({ host: result.name, hostId: result.hostId }, "host joined");
      return result;
    },
  );
}
