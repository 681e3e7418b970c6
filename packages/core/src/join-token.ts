import type { FieldProblem } from "./config-fields.js";
import { GildError } from "./errors.js";

/** The parts of a one-time join token: `gild1.<id>.<secret>.<ca pin>`. */
export interface JoinToken {
  id: string;
  secret: string;
  /** base64url sha256 of the controller CA's public key (SPKI): checked before the secret is sent. */
  caPin: string;
}

const TOKEN_RE = /^gild1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/;

export function formatJoinToken(token: JoinToken): string {
  return `gild1.${token.id}.${token.secret}.${token.caPin}`;
}

/** Parse a join token; GILD_TOKEN_INVALID for anything that is not one. */
export function parseJoinToken(text: string): JoinToken {
  const match = TOKEN_RE.exec(text.trim());
  if (!match) {
    throw new GildError("GILD_TOKEN_INVALID", "this is not a gild join token", {
      hint: "copy the whole token printed by `gild token create`",
    });
  }
  return { id: match[1] as string, secret: match[2] as string, caPin: match[3] as string };
}

/** A host credential: `<host id>.<secret>`; the controller keeps only the secret's hash. */
export interface HostCredential {
  hostId: string;
  secret: string;
}

const CREDENTIAL_RE = /^(h_[0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

export function formatCredential(credential: HostCredential): string {
  return `${credential.hostId}.${credential.secret}`;
}

/** Parse a credential, or undefined when malformed (callers answer GILD_CREDENTIAL_INVALID). */
export function parseCredential(text: string): HostCredential | undefined {
  const match = CREDENTIAL_RE.exec(text.trim());
  return match ? { hostId: match[1] as string, secret: match[2] as string } : undefined;
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL_KEY_RE = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;

/** Host names are DNS labels; label keys and values are short plain strings. Every problem listed. */
export function validateHostIdentity(name: string, labels: Record<string, string>): void {
  const problems: FieldProblem[] = [];
  if (!NAME_RE.test(name))
    problems.push({
      path: "name",
      message: `"${name}" is not a valid host name (a-z, 0-9, '-', at most 63)`,
    });
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY_RE.test(key)) problems.push({ path: `labels.${key}`, message: "invalid label key" });
    if (typeof value !== "string" || value.length > 63 || /[\s,=]/.test(value)) {
      problems.push({
        path: `labels.${key}`,
        message: "label values are at most 63 characters, without spaces, ',' or '='",
      });
    }
  }
  if (problems.length > 0) {
    throw new GildError("GILD_INVALID_SPEC", `invalid host identity (${problems.length} problems)`, {
      details: { problems },
    });
  }
}
