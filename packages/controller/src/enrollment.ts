import {
  formatCredential,
  formatJoinToken,
  GildError,
  parseJoinToken,
  validateHostIdentity,
} from "@gild/core";
import { hashSecret, newId, newSecret, secretMatches } from "./secrets.js";
import type { Store } from "./store/store.js";

export interface JoinRequest {
  token: string;
  name: string;
  labels: Record<string, string>;
}

export interface JoinResult {
  hostId: string;
  name: string;
  credential: string;
  caPem: string;
  signingPublicKeyPem: string;
}

/** One-time join tokens, and trading one for a per-host credential. */
export class Enrollment {
  constructor(
    private readonly deps: {
      store: Store;
      caPin: string;
      caPem: string;
      signingPublicKeyPem: string;
      defaultTtlMs: number;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** A new one-time token; only the hash of its secret is stored. */
  createToken(options: { ttlMs?: number; createdBy: string }): {
    token: string;
    id: string;
    expiresAt: number;
  } {
    const ttlMs = options.ttlMs ?? this.deps.defaultTtlMs;
    if (!(ttlMs > 0) || ttlMs > 30 * 86_400_000) {
      throw new GildError("GILD_BAD_REQUEST", "token lifetime must be between 1s and 30d");
    }
    const id = newId("", 8);
    const secret = newSecret();
    const now = this.now();
    this.deps.store.tokens.insert({
      id,
      secretHash: hashSecret(secret),
      createdAt: now,
      expiresAt: now + ttlMs,
      createdBy: options.createdBy,
    });
    return { token: formatJoinToken({ id, secret, caPin: this.deps.caPin }), id, expiresAt: now + ttlMs };
  }

  /** Trade a valid, unused, unexpired token for a host and its credential. */
  join(request: JoinRequest): JoinResult {
    const parsed = parseJoinToken(request.token);
    if (parsed.caPin !== this.deps.caPin) {
      throw new GildError(
        "GILD_CA_MISMATCH",
        "the token was made for another controller (its CA fingerprint differs)",
      );
    }
    validateHostIdentity(request.name, request.labels);
    const store = this.deps.store;
    const record = store.tokens.byId(parsed.id);
    // An unknown id and a wrong secret look the same to the caller: both are forged tokens.
    if (!record || !secretMatches(parsed.secret, record.secretHash)) {
      throw new GildError("GILD_TOKEN_INVALID", "unknown join token", {
        hint: "create one with `gild token create`",
      });
    }
    const now = this.now();
    if (record.usedAt !== null)
      throw new GildError("GILD_TOKEN_USED", "this join token was already used", {
        hint: "join tokens are one-time; create a new one",
      });
    if (record.expiresAt <= now)
      throw new GildError("GILD_TOKEN_EXPIRED", "this join token has expired", {
        hint: "create a new one with `gild token create`",
      });
    if (store.hosts.byName(request.name)) {
      throw new GildError("GILD_HOST_EXISTS", `a host named ${request.name} is already joined`, {
        hint: `pick another --name, or remove the old one with \`gild host rm ${request.name}\``,
      });
    }
    const hostId = newId("h_", 8);
    const secret = newSecret();
    store.transaction(() => {
      if (!store.tokens.markUsed(parsed.id, now, hostId)) {
        throw new GildError("GILD_TOKEN_USED", "this join token was already used");
      }
      store.hosts.insert({
        id: hostId,
        name: request.name,
        labels: request.labels,
        credentialHash: hashSecret(secret),
        joinedAt: now,
      });
    });
    return {
      hostId,
      name: request.name,
      credential: formatCredential({ hostId, secret }),
      caPem: this.deps.caPem,
      signingPublicKeyPem: this.deps.signingPublicKeyPem,
    };
  }
}
