import { createPublicKey, X509Certificate } from "node:crypto";
import { GildError } from "@gild/core";
import forge from "node-forge";
import { certificateSerial } from "./pki.js";

/** How long a host's peer certificate is valid; agents renew it when less than a third is left. */
export const HOST_CERT_VALIDITY_MS = 30 * 86_400_000;
const BACKDATE_MS = 86_400_000;

/**
 * A TLS certificate of the controller's CA for one host's peer server and client (docs/architecture.md,
 * Security): subject CN = the host id, for both server and client authentication, over the public key
 * the host made (its private key never leaves it). The host proved who it is with its credential.
 */
export function issueHostCertificate(
  ca: { certPem: string; keyPem: string },
  hostId: string,
  publicKeyPem: string,
  now: number,
): string {
  let key: forge.pki.PublicKey;
  try {
    const spki = createPublicKey(publicKeyPem);
    if (spki.asymmetricKeyType !== "rsa" || (spki.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
      throw new Error("not an RSA key of at least 2048 bits");
    key = forge.pki.publicKeyFromPem(spki.export({ type: "spki", format: "pem" }).toString());
  } catch (err) {
    throw new GildError("GILD_BAD_REQUEST", `the public key is not usable: ${(err as Error).message}`);
  }
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = key;
  cert.serialNumber = certificateSerial();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + HOST_CERT_VALIDITY_MS);
  cert.setSubject([{ name: "commonName", value: hostId }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  const pem = forge.pki.certificateToPem(cert);
  // Checked by OpenSSL as peers will check it.
  if (!new X509Certificate(pem).checkIssued(new X509Certificate(ca.certPem)))
    throw new Error("a host certificate does not check against its CA");
  return pem;
}
