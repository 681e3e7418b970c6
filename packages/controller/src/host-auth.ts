import type { IncomingMessage } from "node:http";
import { GildError, parseCredential } from "@gild/core";
import { bearerSecret, secretMatches } from "./secrets.js";
import type { Store } from "./store/store.js";

/** The host a request of an agent (a WebSocket upgrade, /v1/agent/*) authenticates as (Authorization: Bearer <credential>), or a coded error. */
export function authenticateHost(req: Pick<IncomingMessage, "headers">, store: Store): string {
  const presented = bearerSecret(req.headers.authorization);
  const credential = presented ? parseCredential(presented) : undefined;
  if (!credential)
    throw new GildError("GILD_CREDENTIAL_INVALID", "no host credential presented", {
      hint: "join the host first: gild agent join",
    });
  const hash = store.hosts.credentialHash(credential.hostId);
  if (!hash || !secretMatches(credential.secret, hash)) {
    throw new GildError("GILD_CREDENTIAL_INVALID", "the host credential is unknown or revoked", {
      hint: "the host was removed or never joined this controller; join it again with a new token",
    });
  }
  return credential.hostId;
}
