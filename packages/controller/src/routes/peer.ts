import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { authenticateHost } from "../host-auth.js";
import { issueHostCertificate } from "../host-certificates.js";
import { jsonResponses } from "../route-schemas.js";
import type { Services } from "../services.js";
import { exactObject } from "../view-schemas.js";

/** What these routes use. */
export type PeerRouteDeps = Pick<Services, "config" | "store" | "tls"> & { now: () => number };

/**
 * Agents' routes for peer fan-out, authenticated by the host credential (not the admin token):
 * POST /v1/agent/certificate trades the public key a host made for a certificate of the controller's
 * CA naming the host, for its peer server and as its client certificate towards other peers.
 */
export async function peerRoutes(app: FastifyInstance, services: PeerRouteDeps): Promise<void> {
  let caKeyPem: string | undefined;
  app.post<{ Body: { publicKeyPem: string } }>(
    "/v1/agent/certificate",
    {
      schema: {
        summary: "A host's peer certificate",
        description:
          "For agents, authenticated by the host credential (no user token opens it): the public key the host made, signed by the controller's CA into a certificate naming the host id, for its peer server and as its client certificate towards peers (peer fan-out).",
        tags: ["agents"],
        body: {
          type: "object",
          required: ["publicKeyPem"],
          additionalProperties: false,
          properties: {
            publicKeyPem: { type: "string", maxLength: 4096, description: "the host's RSA public key, PEM" },
          },
        },
        response: jsonResponses("the certificate", exactObject({ certPem: { type: "string" } })),
      },
    },
    async (req) => {
      const hostId = authenticateHost(req, services.store);
      req.actor = `host:${hostId}`;
      // Read when first needed: the CA key is only used here, and API tests run without one.
      caKeyPem ??= readFileSync(services.config.paths.caKey, "utf8");
      const certPem = issueHostCertificate(
        { certPem: services.tls.caPem, keyPem: caKeyPem },
        hostId,
        req.body.publicKeyPem,
        services.now(),
      );
      req.auditSummary = `peer certificate issued to host ${hostId}`;
      return { certPem };
    },
  );
}
