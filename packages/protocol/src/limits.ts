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
