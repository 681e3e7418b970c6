import { GildError } from "@gild/core";
import { gild } from "./gen/agent.js";
import { MAX_FRAME_BYTES, MAX_MANIFEST_BYTES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from "./limits.js";
import type {
  AgentMessage,
  ArtifactManifest,
  Command,
  CommandStatus,
  ControllerMessage,
  Hello,
  TransferHeader,
} from "./messages.js";
import { decodeHello } from "./wire-shared.js";
import {
  agentMessageFromV1,
  commandFromV1,
  commandStatusFromV1,
  controllerMessageFromV1,
  encodeAgentMessageV1,
  encodeControllerMessageV1,
} from "./wire-v1.js";
import {
  agentMessageFromV2,
  controllerMessageFromV2,
  encodeAgentMessageV2,
  encodeControllerMessageV2,
} from "./wire-v2.js";

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
    if (err instanceof GildError) throw err;
    throw new GildError(
      "GILD_PROTO_MALFORMED",
      `malformed ${what}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }
}

/** Throws GILD_PROTO_VERSION unless a peer's protocol version can be served by this build. */
export function checkProtocolVersion(version: number): void {
  if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
    throw new GildError(
      "GILD_PROTO_VERSION",
      `protocol version ${version} is not supported (this side speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION})`,
      {
        hint:
          version < MIN_PROTOCOL_VERSION
            ? "upgrade the agent: a controller serves agents of its own protocol version and the one before"
            : "upgrade the controller first: agents may be as new as their controller, never newer",
      },
    );
  }
}

function framed(bytes: Uint8Array): Uint8Array {
  checkSize(bytes, MAX_FRAME_BYTES, "envelope");
  return bytes;
}

function payloadOf<T extends { payload?: string | null }>(envelope: T): T {
  if (envelope.payload === undefined || envelope.payload === null) {
    throw new GildError("GILD_PROTO_UNKNOWN", "envelope carries no payload this protocol version knows");
  }
  return envelope;
}

/** Encode what an agent says, in the protocol version of its session. */
export function encodeAgentMessage(message: AgentMessage, version: number, seq: number): Uint8Array {
  return framed(version === 1 ? encodeAgentMessageV1(message, seq) : encodeAgentMessageV2(message, seq));
}

/** Decode what an agent said, in the protocol version of its session (any version for its Hello). */
export function decodeAgentMessage(bytes: Uint8Array, version: number): AgentMessage {
  checkSize(bytes, MAX_FRAME_BYTES, "frame");
  return decodeWith("envelope", () =>
    version === 1
      ? agentMessageFromV1(payloadOf(gild.v1.Envelope.decode(bytes)))
      : agentMessageFromV2(payloadOf(gild.v2.Envelope.decode(bytes))),
  );
}

/** Encode what the controller says, in the protocol version of the agent's session. */
export function encodeControllerMessage(
  message: ControllerMessage,
  version: number,
  seq: number,
): Uint8Array {
  return framed(
    version === 1 ? encodeControllerMessageV1(message, seq) : encodeControllerMessageV2(message, seq),
  );
}

/** Decode what the controller said, in the agent's protocol version. */
export function decodeControllerMessage(bytes: Uint8Array, version: number): ControllerMessage {
  checkSize(bytes, MAX_FRAME_BYTES, "frame");
  return decodeWith("envelope", () =>
    version === 1
      ? controllerMessageFromV1(payloadOf(gild.v1.Envelope.decode(bytes)))
      : controllerMessageFromV2(payloadOf(gild.v2.Envelope.decode(bytes))),
  );
}

/**
 * The Hello of a session's first frame, whatever version the agent speaks (Hello is the same in all),
 * or undefined when the frame is something else.
 */
export function peekHello(bytes: Uint8Array): Hello | undefined {
  checkSize(bytes, MAX_FRAME_BYTES, "frame");
  const envelope = decodeWith("envelope", () => gild.v2.Envelope.decode(bytes));
  return envelope.payload === "hello" && envelope.hello ? decodeHello(envelope.hello) : undefined;
}

/** A command stored by a controller of protocol 1 (its protocol-1 encoding). */
export function decodeLegacyCommand(bytes: Uint8Array): Command {
  return decodeWith("stored command", () => commandFromV1(gild.v1.Command.decode(bytes)));
}

/** A final status journaled by an agent of protocol 1 (base64 of its v1 encoding). */
export function decodeLegacyCommandStatus(bytes: Uint8Array): CommandStatus {
  return decodeWith("journaled status", () => commandStatusFromV1(gild.v1.CommandStatus.decode(bytes)));
}

/** The exact bytes a manifest signature covers (the same in every protocol version). */
export function encodeManifest(manifest: ArtifactManifest): Uint8Array {
  return gild.v2.ArtifactManifest.encode(manifest).finish();
}

export function decodeManifest(bytes: Uint8Array): ArtifactManifest {
  checkSize(bytes, MAX_MANIFEST_BYTES, "manifest");
  return decodeWith("artifact manifest", () => gild.v2.ArtifactManifest.decode(bytes));
}

export function encodeTransferHeader(header: TransferHeader): Uint8Array {
  return gild.v2.TransferHeader.encode(header).finish();
}

export function decodeTransferHeader(bytes: Uint8Array): TransferHeader {
  checkSize(bytes, 4096, "transfer header");
  return decodeWith("transfer header", () => gild.v2.TransferHeader.decode(bytes));
}
