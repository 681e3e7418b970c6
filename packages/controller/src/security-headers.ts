import type { FastifyInstance } from "fastify";

/**
 * The dashboard's policy: scripts, styles, images and connections from this origin only (no inline
 * script or style, no eval, no plugins), no framing (clickjacking), forms post here only.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * Security headers on every answer (the dashboard's files and the API's JSON alike: a JSON answer
 * opened in a browser is a document too): the CSP, no MIME sniffing, no Referer sent anywhere.
 */
export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook("onSend", async (_req, reply, payload) => {
    reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
    reply.header("x-content-type-options", "nosniff");
    reply.header("referrer-policy", "no-referrer");
    reply.header("x-frame-options", "DENY");
    reply.header("cross-origin-opener-policy", "same-origin");
    return payload;
  });
}
