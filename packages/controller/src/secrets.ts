import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** sha256 hex of a high-entropy secret (tokens, credentials): what the store keeps instead of the secret. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** Compare a presented secret with a stored hash in constant time. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const presented = Buffer.from(hashSecret(secret), "hex");
  const stored = Buffer.from(storedHash, "hex");
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** The secret of an `Authorization: Bearer <secret>` header, or "" without one. */
export function bearerSecret(header: string | undefined): string {
  // The scheme is case-insensitive (RFC 9110, 11.1): "bearer" and "BEARER" are Bearer too.
  const match = /^bearer[ \t]+(.*)$/i.exec(header ?? "");
  return match ? (match[1] as string).trim() : "";
}

/** 32 random bytes, base64url (43 characters). */
export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

export function newId(prefix: string, bytes = 8): string {
  return `${prefix}${randomBytes(bytes).toString("hex")}`;
}
