import { GildError } from "@gild/core";
import { gild } from "./gen/agent.js";
import { MAX_FRAME_BYTES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from "./limits.js";
import type { ArtifactManifest, Envelope, EnvelopePayloadKind, TransferHeader } from "./messages.js";

/** A decoded Envelope whose payload is known to be set. */
export type DecodedEnvelope = Envelope & { payload: EnvelopePayloadKind };

/** Inputs larger than their limit are refused before any decoding (and never produced). */
function checkSize(bytes: Uint8Array, maxBytes: number, what: string): void {
  if (bytes.byteLength > maxBytes) {
    throw new GildError(
      "GILD_PROTO_TOO_LARGE",
      `${what} of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`,
    );
  }
}

// protobufjs throws plain Errors (RangeError, "invalid wire type", stack overflow on absurd nesting);
// every one of them means the bytes are not a valid message.
function decodeWith<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw new GildError(
      "GILD_PROTO_MALFORMED",
      `malformed ${what}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }
}

/** Encode one Envelope for a frame; refuses to produce a frame larger than the limit. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  const bytes = gild.v1.Envelope.encode(envelope).finish();
  checkSize(bytes, MAX_FRAME_BYTES, "envelope");
  return bytes;
}

/** Decode one frame into an Envelope; coded errors for oversized, malformed or payload-less input. */
export function decodeEnvelope(bytes: Uint8Array): DecodedEnvelope {
  checkSize(bytes, MAX_FRAME_BYTES, "frame");
  const message = decodeWith("envelope", () => gild.v1.Envelope.decode(bytes));
  if (message.payload === undefined) {
    throw new GildError("GILD_PROTO_UNKNOWN", "envelope carries no payload this protocol version knows");
  }
  return message as DecodedEnvelope;
}

/** The exact bytes a manifest signature covers. */
export function encodeManifest(manifest: ArtifactManifest): Uint8Array {
  return gild.v1.ArtifactManifest.encode(manifest).finish();
}

export function decodeManifest(bytes: Uint8Array): ArtifactManifest {
  checkSize(bytes, 64 * 1024, "manifest");
  return decodeWith("artifact manifest", () => gild.v1.ArtifactManifest.decode(bytes));
}

export function encodeTransferHeader(header: TransferHeader): Uint8Array {
  return gild.v1.TransferHeader.encode(header).finish();
}

export function decodeTransferHeader(bytes: Uint8Array): TransferHeader {
  checkSize(bytes, 4096, "transfer header");
  return decodeWith("transfer header", () => gild.v1.TransferHeader.decode(bytes));
}

/** Throws GILD_PROTO_VERSION unless a peer's protocol version can be served by this build. */
export function checkProtocolVersion(version: number): void {
  if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
    throw new GildError(
      "GILD_PROTO_VERSION",
      `protocol version ${version} is not supported (this side speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION})`,
      { hint: "upgrade the agent and the controller to the same gild release" },
    );
  }
}
