import { generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { dirname } from "node:path";
import { caPinOf } from "@gild/core";
import forge from "node-forge";
import type { ControllerConfig } from "./config.js";
import { newSecret } from "./secrets.js";

/** The controller's TLS material, read at start (and made at first start). */
export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
  /** base64url sha256 of the CA's SubjectPublicKeyInfo: what join tokens pin. */
  caPin: string;
}

function writeSecret(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, content, { mode: 0o600 });
}

function rsaKeyPair(): { publicPem: string; privatePem: string } {
  // Key generation by OpenSSL (fast); node-forge only assembles and signs the certificates.
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

export function certificateSerial(): string {
  // A positive 16-byte serial in its minimal DER form: the high bit cleared (else negative) and the
  // next one set, so the first byte is never 0x00. forge writes the bytes as they are, and a leading
  // zero that is not needed is "illegal padding" to OpenSSL: 1 certificate in 256 failed to load.
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString("hex");
}

// Certificates are valid from a day before they are made: an agent whose clock is behind the
// controller's (seen: 10 minutes) would otherwise refuse a new controller's certificate as "not yet
// valid" and could not connect at all.
const VALID_FROM_BACKDATE_MS = 86_400_000;

function makeCa(): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicPem);
  cert.serialNumber = certificateSerial();
  cert.validity.notBefore = new Date(Date.now() - VALID_FROM_BACKDATE_MS);
  cert.validity.notAfter = new Date(Date.now() + 20 * 365 * 86_400_000);
  const subject = [{ name: "commonName", value: `gild controller CA (${hostname()})` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true, pathLenConstraint: 0 },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privatePem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}

/** Names and addresses the server certificate covers: configured names, this host, every local address. */
export function serverNames(config: ControllerConfig): { dns: string[]; ips: string[] } {
  const dns = new Set<string>(["localhost", hostname()]);
  const ips = new Set<string>(["127.0.0.1", "::1"]);
  const add = (name: string) =>
    /^[0-9.]+$/.test(name) || name.includes(":") ? ips.add(name) : dns.add(name);
  for (const name of config.tlsNames) add(name);
  if (config.listenHost !== "0.0.0.0" && config.listenHost !== "::") add(config.listenHost);
  add(new URL(config.publicUrl).hostname.replace(/^\[(.*)\]$/, "$1"));
  for (const list of Object.values(networkInterfaces())) {
    for (const addr of list ?? []) if (!addr.internal) ips.add(addr.address);
  }
  return { dns: [...dns].sort(), ips: [...ips].sort() };
}

function makeServerCert(ca: { certPem: string; keyPem: string }, names: { dns: string[]; ips: string[] }) {
  const keys = rsaKeyPair();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicPem);
  cert.serialNumber = certificateSerial();
  cert.validity.notBefore = new Date(Date.now() - VALID_FROM_BACKDATE_MS);
  cert.validity.notAfter = new Date(Date.now() + 5 * 365 * 86_400_000);
  cert.setSubject([{ name: "commonName", value: names.dns[1] ?? "gild-controller" }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        ...names.dns.map((value) => ({ type: 2, value })),
        ...names.ips.map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}

/**
 * Load the CA and server certificate, making them at first start; the server certificate is made
 * again when the names it must cover changed (a new address, a new tlsNames entry).
 */
export function ensureTls(config: ControllerConfig): TlsMaterial {
  const paths = config.paths;
  if (!existsSync(paths.caCert) || !existsSync(paths.caKey)) {
    const ca = makeCa();
    writeSecret(paths.caKey, ca.keyPem);
    writeFileSync(paths.caCert, ca.certPem, { mode: 0o644 });
  }
  const ca = { certPem: readFileSync(paths.caCert, "utf8"), keyPem: readFileSync(paths.caKey, "utf8") };
  const names = serverNames(config);
  let current: string | undefined = existsSync(paths.serverCert)
    ? readFileSync(paths.serverCert, "utf8")
    : undefined;
  if (current !== undefined) {
    const x509 = new X509Certificate(current);
    const covered = new Set((x509.subjectAltName ?? "").split(", "));
    // IPv6 SANs print in expanded form; DNS names and IPv4 addresses are enough to notice a change.
    const wanted = [
      ...names.dns.map((d) => `DNS:${d}`),
      ...names.ips.filter((ip) => !ip.includes(":")).map((ip) => `IP Address:${ip}`),
    ];
    const missing = wanted.filter((entry) => !covered.has(entry));
    if (missing.length > 0 || !x509.checkIssued(new X509Certificate(ca.certPem))) current = undefined;
  }
  if (current === undefined) {
    const server = makeServerCert(ca, names);
    writeSecret(paths.serverKey, server.keyPem);
    writeFileSync(paths.serverCert, server.certPem, { mode: 0o644 });
  }
  return {
    caPem: ca.certPem,
    certPem: readFileSync(paths.serverCert, "utf8"),
    keyPem: readFileSync(paths.serverKey, "utf8"),
    caPin: caPinOf(ca.certPem),
  };
}

/** The admin token (made at first start, readable by root only). */
export function ensureAdminToken(config: ControllerConfig): string {
  if (!existsSync(config.paths.adminToken)) {
    writeSecret(config.paths.adminToken, `gadm_${newSecret()}\n`);
  }
  return readFileSync(config.paths.adminToken, "utf8").trim();
}

/** The scrape token for GET /metrics (made at first start, readable by root only). */
export function ensureMetricsToken(config: ControllerConfig): string {
  if (!existsSync(config.paths.metricsToken)) {
    writeSecret(config.paths.metricsToken, `gmet_${newSecret()}\n`);
  }
  return readFileSync(config.paths.metricsToken, "utf8").trim();
}

/** The ed25519 key that signs artifact manifests (made at first start). */
export function ensureSigningKey(config: ControllerConfig): { privatePem: string; publicPem: string } {
  if (!existsSync(config.paths.signingKey)) {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    writeSecret(config.paths.signingKey, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    writeFileSync(
      config.paths.signingPublicKey,
      publicKey.export({ type: "spki", format: "pem" }).toString(),
      {
        mode: 0o644,
      },
    );
  }
  return {
    privatePem: readFileSync(config.paths.signingKey, "utf8"),
    publicPem: readFileSync(config.paths.signingPublicKey, "utf8"),
  };
}
