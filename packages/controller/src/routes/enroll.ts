import type { FastifyInstance } from "fastify";
import { jsonResponses } from "../route-schemas.js";
import type { Services } from "../services.js";
import { exactObject } from "../view-schemas.js";

/** Enrollment: the CA (public, checked by agents against the token's pin) and the join exchange. */
/** What these routes use. */
export type EnrollRouteDeps = Pick<Services, "enrollment" | "log" | "tls">;

/** A fastify plugin: register it with its dependencies (`app.register(enrollRoutes, deps)`). */
export async function enrollRoutes(app: FastifyInstance, services: EnrollRouteDeps): Promise<void> {
  const tags = ["enrollment"];
  app.get(
    "/v1/enroll/ca",
    {
      schema: {
        summary: "The controller's CA certificate",
        description: "Public: a joining agent checks it against the fingerprint its join token carries.",
        tags,
        response: jsonResponses("the CA", exactObject({ caPem: { type: "string" } })),
      },
    },
    async () => ({ caPem: services.tls.caPem }),
  );

  app.post<{ Body: { token: string; name: string; labels?: Record<string, string> } }>(
    "/v1/enroll",
    {
      schema: {
        summary: "Join a host",
        description:
          "Public, but the join token is the credential: it is spent, and the host gets its own credential (shown once) and what it must trust.",
        tags,
        body: {
          type: "object",
          required: ["token", "name"],
          additionalProperties: false,
          properties: {
            token: { type: "string", maxLength: 256, description: "a join token (gild token create)" },
            name: { type: "string", maxLength: 63, description: "the host's name" },
            labels: { type: "object", additionalProperties: { type: "string" }, maxProperties: 64 },
          },
        },
        response: jsonResponses(
          "joined",
          exactObject({
            hostId: { type: "string" },
            name: { type: "string" },
            credential: { type: "string", description: "the host's credential, shown once" },
            caPem: { type: "string" },
            signingPublicKeyPem: { type: "string", description: "the key artifacts are signed with" },
          }),
        ),
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
