import { gild } from "./gen/agent.js";

/**
 * Protocol version spoken by this build: the highest value of the schema's ProtocolVersion enum
 * (proto/gild/v2/agent.proto), so the schema is the one place it is written. Hello carries it.
 */
export const PROTOCOL_VERSION = Math.max(
  ...Object.values(gild.v2.ProtocolVersion).filter((v): v is number => typeof v === "number"),
);

/** Oldest agent protocol version this build's controller still serves: its own, and the one before. */
export const MIN_PROTOCOL_VERSION = PROTOCOL_VERSION - 1;

/** Largest control-channel frame (one Envelope) and largest raw artifact frame: 1 MiB. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** WebSocket close codes used on both sockets. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  tooLarge: 1009,
  internalError: 1011,
  /** The peer cannot serve right now (the controller cannot write its state): reconnect later. */
  tryAgainLater: 1013,
  /** Application range: the credential was revoked while connected. */
  revoked: 4001,
  /** Application range: the protocol version is not supported. */
  protocolVersion: 4002,
  /** Application range: another connection for the same host replaced this one. */
  replaced: 4003,
} as const;

/** Chunk size of an artifact's stream before it grows (manifest chunk_size): see chunkSizeFor. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Most chunks one manifest lists: 16384 digests of 34 bytes each on the wire are 544 KiB, well under
 * the 1 MiB frame the manifest travels in.
 */
export const MAX_CHUNKS = 16384;

/**
 * Largest manifest an agent decodes: MAX_CHUNKS digests plus the rest, under the frame it travels in.
 * (Agents before chunked transfers took 64 KiB: about 1900 chunks, so streams up to ~7.4 GiB.)
 */
export const MAX_MANIFEST_BYTES = 640 * 1024;

/**
 * The chunk size for a stream of `sizeBytes`: DEFAULT_CHUNK_BYTES, doubled until the stream has at
 * most MAX_CHUNKS chunks (4 MiB up to 64 GiB, 8 MiB up to 128 GiB, ...).
 */
export function chunkSizeFor(sizeBytes: number): number {
  let chunk = DEFAULT_CHUNK_BYTES;
  while (Math.ceil(sizeBytes / chunk) > MAX_CHUNKS) chunk *= 2;
  return chunk;
}

/** How many chunks of `chunkSize` a stream of `sizeBytes` has (the last one may be shorter). */
export function chunkCount(sizeBytes: number, chunkSize: number): number {
  return Math.ceil(sizeBytes / chunkSize);
}
