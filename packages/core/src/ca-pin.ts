import { createHash, X509Certificate } from "node:crypto";

/**
 * The fingerprint a join token pins: base64url sha256 of the CA certificate's public key
 * (SubjectPublicKeyInfo, DER). Pure computation, shared by the controller and the agent.
 */
export function caPinOf(caPem: string): string {
  const spki = new X509Certificate(caPem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64url");
}
