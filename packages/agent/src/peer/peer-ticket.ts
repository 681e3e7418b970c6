import { createPublicKey, verify } from "node:crypto";
import { GildError } from "@gild/core";
import { decodePeerTicket, type PeerTicket, peerTicketSignedBytes } from "@gild/protocol";

/** The header a chunk request carries its ticket in: base64 of the ticket, ".", base64 of its signature. */
export const PEER_TICKET_HEADER = "x-gild-peer-ticket";

export function ticketHeaderValue(ticket: Uint8Array, signature: Uint8Array): string {
  return `${Buffer.from(ticket).toString("base64")}.${Buffer.from(signature).toString("base64")}`;
}

function refuse(message: string): GildError {
  return new GildError("GILD_PEER_TICKET_INVALID", message, {
    hint: "the controller issues tickets with each pull; the fetching host falls back to its next source",
  });
}

/**
 * Check a chunk request's ticket: signed by the controller (with the ticket context), for this
 * artifact, this server, the host the client certificate names, and not expired. Throws
 * GILD_PEER_TICKET_INVALID naming what failed.
 */
export function checkPeerTicket(
  header: string | undefined,
  expected: { artifactId: string; serverHostId: string; requesterHostId: string; now: number },
  signingPublicKeyPem: string,
): PeerTicket {
  const [ticketText, signatureText, extra] = (header ?? "").split(".");
  if (!ticketText || !signatureText || extra !== undefined) throw refuse("no transfer ticket presented");
  const bytes = Buffer.from(ticketText, "base64");
  const signature = Buffer.from(signatureText, "base64");
  let ok = false;
  try {
    ok = verify(null, peerTicketSignedBytes(bytes), createPublicKey(signingPublicKeyPem), signature);
  } catch {
    ok = false;
  }
  if (!ok) throw refuse("the transfer ticket's signature does not verify with the controller's key");
  const ticket = decodePeerTicket(bytes);
  if (ticket.serverHostId !== expected.serverHostId) throw refuse("the ticket is for another serving host");
  if (ticket.artifactId !== expected.artifactId) throw refuse("the ticket is for another artifact");
  if (ticket.requesterHostId !== expected.requesterHostId)
    throw refuse("the ticket names another host than the client certificate");
  if (ticket.expiresAtMs <= expected.now) throw refuse("the ticket expired");
  return ticket;
}
