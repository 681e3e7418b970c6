import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, type TestApp } from "./support.js";

// POST /v1/agent/certificate: a host trades the public key it made for a certificate of the controller's
// CA naming its host id (docs/architecture.md, Security), and only with its own host credential.

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

const rsaPublicPem = (bits = 2048) =>
  generateKeyPairSync("rsa", { modulusLength: bits })
    .publicKey.export({ type: "spki", format: "pem" })
    .toString();

describe("POST /v1/agent/certificate", () => {
  let c: TestApp;
  let caPem: string;
  const admin = () => ({ authorization: `Bearer ${c.adminToken}` });

  /** Join a host through the API as an agent does: a token, then the enrollment. */
  async function join(name: string): Promise<{ hostId: string; credential: string }> {
    const token = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: admin(),
      payload: {},
    });
    const enrolled = await c.controller.app.inject({
      method: "POST",
      url: "/v1/enroll",
      payload: { token: token.json<{ token: string }>().token, name },
    });
    expect(enrolled.statusCode).toBe(200);
    return enrolled.json<{ hostId: string; credential: string }>();
  }

  const ask = (headers: Record<string, string>, publicKeyPem: string) =>
    c.controller.app.inject({
      method: "POST",
      url: "/v1/agent/certificate",
      headers,
      payload: { publicKeyPem },
    });

  beforeAll(async () => {
    c = await buildTestApp();
    const ca = await c.controller.app.inject({ method: "GET", url: "/v1/enroll/ca" });
    caPem = ca.json<{ caPem: string }>().caPem;
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("refuses a request without a host credential, with a forged one, or with a user's token", async () => {
    const { credential } = await join("cert-refused");
    const forged = credential.replace(/.$/, (ch) => (ch === "A" ? "B" : "A"));
    for (const headers of [{}, { authorization: `Bearer ${forged}` }, admin()]) {
      const res = await ask(headers, rsaPublicPem());
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("GILD_CREDENTIAL_INVALID");
    }
  });

  it("issues a certificate of the controller's CA for the host's own key, naming its host id, for server and client", async () => {
    const { hostId, credential } = await join("cert-web-1");
    const publicKeyPem = rsaPublicPem();
    const res = await ask({ authorization: `Bearer ${credential}` }, publicKeyPem);
    expect(res.statusCode).toBe(200);
    const cert = new X509Certificate(res.json<{ certPem: string }>().certPem);
    expect(cert.subject).toBe(`CN=${hostId}`);
    expect(cert.checkIssued(new X509Certificate(caPem))).toBe(true);
    expect(cert.publicKey.export({ type: "spki", format: "pem" }).toString()).toBe(publicKeyPem);
    expect(cert.keyUsage).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
    expect(cert.ca).toBe(false);
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
  });

  it("names the host whose credential asked, whatever else the request says", async () => {
    const a = await join("cert-a");
    const b = await join("cert-b");
    const res = await ask({ authorization: `Bearer ${b.credential}` }, rsaPublicPem());
    expect(new X509Certificate(res.json<{ certPem: string }>().certPem).subject).toBe(`CN=${b.hostId}`);
    expect(a.hostId).not.toBe(b.hostId);
  });

  it("refuses a key it would not trust: not RSA, or under 2048 bits", async () => {
    const { credential } = await join("cert-weak");
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    for (const key of [ec, rsaPublicPem(1024), "not a key"]) {
      const res = await ask({ authorization: `Bearer ${credential}` }, key);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe("GILD_BAD_REQUEST");
    }
  });

  it("refuses a host that was removed", async () => {
    const { credential } = await join("cert-gone");
    const removed = await c.controller.app.inject({
      method: "DELETE",
      url: "/v1/hosts/cert-gone",
      headers: admin(),
    });
    expect(removed.statusCode).toBe(200);
    const res = await ask({ authorization: `Bearer ${credential}` }, rsaPublicPem());
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe("GILD_CREDENTIAL_INVALID");
  });
});
