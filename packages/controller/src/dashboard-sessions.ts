import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { hashSecret, newSecret } from "./secrets.js";
import type { SessionRecord, SessionsRepo } from "./store/sessions-repo.js";
import type { Identity } from "./token-identity.js";

/** The opened session: its cookie's id (given to the browser once) and its CSRF token. */
export interface OpenedSession {
  id: string;
  csrfToken: string;
  record: SessionRecord;
}

/**
 * Dashboard sessions: a user's token is traded once (POST /v1/session) for a random id in an HttpOnly,
 * SameSite=Strict cookie; the store keeps the id's sha256 with the user, the role and an expiry. A
 * session holds only while the token it was opened with does (checked on every request by auth.ts),
 * so removing the user or rotating its token ends it.
 *
 * Its CSRF token is derived from the id (sha256 of a label and the id): JavaScript cannot read the
 * HttpOnly cookie, so only a page the controller gave the token to (GET or POST /v1/session, which
 * another origin cannot read) can send it back in x-gild-csrf.
 */
export class DashboardSessions {
  /** `__Host-` binds the cookie to this origin (Secure, Path=/, no Domain); plain http cannot have it. */
  readonly cookieName: string;

  constructor(
    private readonly deps: {
      repo: SessionsRepo;
      ttlMs: number;
      /** Plain http (insecureDev): the cookie cannot be Secure. */
      secure: boolean;
      now: () => number;
    },
  ) {
    this.cookieName = deps.secure ? "__Host-gild-session" : "gild-session";
  }

  /** Open a session for an identity; it ends at the TTL or when the token expires, whichever is first. */
  open(identity: Identity): OpenedSession {
    const now = this.deps.now();
    this.deps.repo.prune(now);
    const id = newSecret();
    const expiresAt = Math.min(now + this.deps.ttlMs, identity.expiresAt ?? Number.POSITIVE_INFINITY);
    const record: SessionRecord = {
      idHash: hashSecret(id),
      actor: identity.actor,
      role: identity.role,
      tokenHash: identity.tokenHash,
      createdAt: now,
      expiresAt,
    };
    this.deps.repo.insert(record);
    return { id, csrfToken: csrfTokenOf(id), record };
  }

  /** The stored session of a cookie id, if it exists and has not expired. */
  find(id: string): SessionRecord | undefined {
    const record = this.deps.repo.byIdHash(hashSecret(id));
    if (!record) return undefined;
    if (record.expiresAt <= this.deps.now()) {
      this.deps.repo.delete(record.idHash);
      return undefined;
    }
    return record;
  }

  close(id: string): void {
    this.deps.repo.delete(hashSecret(id));
  }

  /** End every session of a user (removed, or given a new token). */
  endFor(actor: string): void {
    this.deps.repo.deleteForActor(actor);
  }

  /** The session cookie's id in a request, or "". */
  cookieOf(req: FastifyRequest): string {
    return cookieValue(req.headers.cookie, this.cookieName);
  }

  /** Set-Cookie for a new session. */
  setCookie(opened: OpenedSession): string {
    const maxAge = Math.max(0, Math.floor((opened.record.expiresAt - this.deps.now()) / 1000));
    return `${this.cookieName}=${opened.id}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${this.deps.secure ? "; Secure" : ""}`;
  }

  /** Set-Cookie that removes the session cookie. */
  clearCookie(): string {
    return `${this.cookieName}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${this.deps.secure ? "; Secure" : ""}`;
  }

  /** Whether `presented` is the CSRF token of the session with this cookie id (constant time). */
  csrfMatches(id: string, presented: string | string[] | undefined): boolean {
    if (typeof presented !== "string") return false;
    const expected = Buffer.from(csrfTokenOf(id));
    const given = Buffer.from(presented);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  csrfTokenOf(id: string): string {
    return csrfTokenOf(id);
  }
}

function csrfTokenOf(id: string): string {
  return createHash("sha256").update(`gild-csrf\0${id}`).digest("base64url");
}

/** The value of one cookie in a Cookie header, or "". */
export function cookieValue(header: string | undefined, name: string): string {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return "";
}

/**
 * Whether a request comes from this controller's own pages: its Origin names the host it was sent to,
 * and the browser's Sec-Fetch-Site (when sent) says same-origin. Browsers send Origin on every POST,
 * PUT and DELETE made by fetch.
 */
export function sameOrigin(req: FastifyRequest): boolean {
  const fetchSite = req.headers["sec-fetch-site"];
  if (fetchSite !== undefined && fetchSite !== "same-origin") return false;
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    // An Origin that is not a URL ("null", from a sandboxed frame) is not this controller.
    return false;
  }
}
