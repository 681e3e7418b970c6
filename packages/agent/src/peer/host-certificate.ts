import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { requestJson } from "@gild/api-client";
import { GildError, type Logger } from "@gild/core";
import { readIfExists, writeFileAtomic } from "../write-atomic.js";
import type { PeerTls } from "./peer-server.js";

const KEY_FILE = "peer-key.pem";
const CERT_FILE = "peer-cert.pem";
/** Renewed when less than this is left (a third of the controller's 30 days). */
const RENEW_BEFORE_MS = 10 * 86_400_000;

/** True when `certPem` is for `publicKeyPem`, issued by `caPem`, and valid for a while yet. */
function usable(certPem: string, keyPem: string, caPem: string, now: number): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return (
      cert.checkPrivateKey(createPrivateKey(keyPem)) &&
      cert.checkIssued(new X509Certificate(caPem)) &&
      Date.parse(cert.validTo) - now > RENEW_BEFORE_MS
    );
  } catch {
    return false;
  }
}

/**
 * This host's peer TLS material (docs/architecture.md, Security): a key made here (`<state>/peer-key.pem`,
 * never sent anywhere) and a certificate of the controller's CA for it (`<state>/peer-cert.pem`),
 * asked for over HTTPS with the host credential when missing, for another key, or near its end.
 */
export async function ensureHostCertificate(options: {
  stateDir: string;
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  log: Logger;
  now?: number;
}): Promise<PeerTls> {
  if (options.caPem === null)
    throw new GildError(
      "GILD_CONFIG_INVALID",
      "peer transfers need TLS: this agent joined a controller over plain http",
    );
  const now = options.now ?? Date.now();
  const keyPath = join(options.stateDir, KEY_FILE);
  const certPath = join(options.stateDir, CERT_FILE);
  let keyPem = await readIfExists(keyPath);
  if (keyPem === null) {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    await writeFileAtomic(keyPath, keyPem, 0o600);
  }
  const current = await readIfExists(certPath);
  if (current !== null && usable(current, keyPem, options.caPem, now))
    return { certPem: current, keyPem, caPem: options.caPem };
  const publicKeyPem = createPublicKey(keyPem).export({ type: "spki", format: "pem" }).toString();
  const answer = await requestJson<{ certPem: string }>(
    "POST",
    `${options.controllerUrl}/v1/agent/certificate`,
    { publicKeyPem },
    { caPem: options.caPem },
    { authorization: `Bearer ${options.credential}` },
  );
  if (!usable(answer.certPem, keyPem, options.caPem, now))
    throw new GildError(
      "GILD_INTERNAL",
      "the controller issued a peer certificate that does not fit this host's key",
    );
  await writeFileAtomic(certPath, answer.certPem, 0o644);
  options.log.info({ validTo: new X509Certificate(answer.certPem).validTo }, "peer certificate issued");
  return { certPem: answer.certPem, keyPem, caPem: options.caPem };
}
