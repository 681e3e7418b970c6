import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { authenticateHost } from "../host-auth.js";
import { issueHostCertificate } from "../host-certificates.js";
import type { Services } from "../services.js";

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
        body: {
          type: "object",
          required: ["publicKeyPem"],
          additionalProperties: false,
          properties: { publicKeyPem: { type: "string", maxLength: 4096 } },
        },
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
