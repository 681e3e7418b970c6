/**
 * The one table of gild error codes. Every code has the HTTP status an API answers it with and one line
 * of documentation; docs/errors.md is checked against this table by a test, so the two cannot drift.
 */
export const errorCodes = {
  // generic
  GILD_INTERNAL: { status: 500, doc: "An unexpected failure inside gild; the log has the cause." },
  GILD_BAD_REQUEST: { status: 400, doc: "The request is malformed: a missing or ill-typed field." },
  GILD_BODY_TOO_LARGE: { status: 413, doc: "The request's body is larger than the API accepts (1 MiB)." },
  GILD_INVALID_SPEC: {
    status: 400,
    doc: "A spec (app, rollout, config) failed validation; details list every problem with its path.",
  },
  GILD_NOT_FOUND: { status: 404, doc: "The addressed object does not exist." },
  GILD_CONFLICT: {
    status: 409,
    doc: "The request conflicts with the current state (it already exists, or is busy).",
  },
  GILD_UNAUTHENTICATED: { status: 401, doc: "No valid credential was presented." },
  GILD_FORBIDDEN: { status: 403, doc: "The credential is valid but may not do this." },
  GILD_CSRF_REJECTED: {
    status: 403,
    doc: "A change made with the dashboard's session cookie lacked the session's CSRF token or came from another origin.",
  },
  GILD_UNAVAILABLE: { status: 503, doc: "A dependency (controller, host, pool) is not reachable right now." },
  GILD_TIMEOUT: { status: 504, doc: "An operation did not finish within its deadline." },
  GILD_CONFIG_INVALID: {
    status: 400,
    doc: "A configuration file or flag is invalid; every problem is listed.",
  },

  // host environment
  GILD_NOT_ROOT: { status: 500, doc: "The operation needs root (btrfs, mounts, containers)." },
  GILD_TOOL_MISSING: {
    status: 500,
    doc: "A host program gild needs (btrfs, systemd-nspawn, ...) is not installed.",
  },
  GILD_NOT_BTRFS: { status: 400, doc: "The pool path is not on a btrfs filesystem." },
  GILD_POOL_INVALID: { status: 500, doc: "The pool directory is missing or has an unexpected layout." },
  GILD_PATH_OUTSIDE_POOL: {
    status: 500,
    doc: "A destructive operation was asked for a path outside the pool; refused.",
  },
  GILD_STATE_CORRUPT: {
    status: 500,
    doc: "A state file of the agent (identity, credential, journal entry, switch record) is damaged; the message names it.",
  },
  GILD_STORE_UNAVAILABLE: {
    status: 503,
    doc: "The controller cannot write its database (disk full, I/O error, PostgreSQL down or unreachable); nothing was half-written. Retry once it has space or answers.",
  },
  GILD_STORE_BUSY: {
    status: 409,
    doc: "Another controller already uses this PostgreSQL database (it holds the database's lock); one controller per database.",
  },
  GILD_NO_SPACE: {
    status: 507,
    doc: "The pool ran out of space; nothing that was there before was changed.",
  },

  // btrfs subvolumes and streams
  GILD_BTRFS_FAILED: { status: 500, doc: "A btrfs-progs command failed; the message carries its output." },
  GILD_SUBVOLUME_EXISTS: { status: 409, doc: "A subvolume already exists at that path." },
  GILD_SUBVOLUME_NOT_FOUND: { status: 404, doc: "No subvolume at that path." },
  GILD_STREAM_CORRUPT: {
    status: 422,
    doc: "A send stream failed to apply: truncated, corrupted, or hostile.",
  },
  GILD_STREAM_HASH_MISMATCH: {
    status: 422,
    doc: "The stream's sha256 differs from the one expected; refused.",
  },
  GILD_STREAM_SIZE_MISMATCH: {
    status: 422,
    doc: "The stream's length differs from the one expected; refused.",
  },
  GILD_STREAM_CHECK_FAILED: {
    status: 422,
    doc: "A received subvolume failed its checks (read-only, received_uuid, parent); removed.",
  },
  GILD_PARENT_MISSING: { status: 409, doc: "An incremental stream's parent is not on the receiving pool." },

  // images
  GILD_IMAGE_NAME_INVALID: {
    status: 400,
    doc: "An image line or reference is not of the form name or name@version.",
  },
  GILD_IMAGE_NOT_FOUND: { status: 404, doc: "No such image line or version." },
  GILD_IMAGE_EXISTS: { status: 409, doc: "That image version already exists." },
  GILD_IMAGE_IN_USE: {
    status: 409,
    doc: "The image version is used by an app or a rollout and cannot be removed.",
  },
  GILD_IMAGE_COMMAND_FAILED: {
    status: 422,
    doc: "The command that was to make a new image version failed; no version made.",
  },
  GILD_IMAGE_SOURCE_INVALID: {
    status: 400,
    doc: "The source of a new image (directory, suite) is not usable.",
  },
  GILD_LINE_KIND_MISMATCH: {
    status: 409,
    doc: "A line is used as the other kind: an os image line where app code is expected, or a code line as an image.",
  },

  // wire
  GILD_PROTO_MALFORMED: { status: 400, doc: "A protocol message could not be decoded." },
  GILD_PROTO_TOO_LARGE: { status: 413, doc: "A protocol message exceeds the size limit." },
  GILD_PROTO_UNKNOWN: { status: 400, doc: "A protocol message has no known payload." },
  GILD_AGENT_TOO_OLD: {
    status: 409,
    doc: "The host's agent speaks a protocol version that cannot carry this (app code needs protocol 2); upgrade it.",
  },
  GILD_INVENTORY_INVALID: {
    status: 400,
    doc: "An agent's inventory broke the rules for one (names, counts, sizes): nothing of it was stored, the connection is closed.",
  },
  GILD_PROTO_VERSION: {
    status: 426,
    doc: "The peer speaks an incompatible protocol version; upgrade one side.",
  },

  // enrollment and auth
  GILD_TOKEN_INVALID: { status: 401, doc: "The join token is malformed, forged, or unknown." },
  GILD_TOKEN_EXPIRED: { status: 401, doc: "The join token has expired; create a new one." },
  GILD_TOKEN_USED: { status: 401, doc: "The join token was already used; tokens are one-time." },
  GILD_CA_MISMATCH: {
    status: 401,
    doc: "The controller's CA does not match the fingerprint pinned in the token.",
  },
  GILD_CREDENTIAL_INVALID: { status: 401, doc: "The host credential is missing, unknown or revoked." },
  GILD_NOT_JOINED: { status: 400, doc: "This agent has not joined a controller yet (run gild agent join)." },
  GILD_HOST_EXISTS: { status: 409, doc: "A host with that name is already joined." },
  GILD_HOST_NOT_FOUND: { status: 404, doc: "No such host." },
  GILD_USER_NOT_FOUND: { status: 404, doc: "No operator of that name (`gild user ls`)." },
  GILD_USER_EXISTS: { status: 409, doc: "An operator of that name exists already." },
  GILD_HOST_OFFLINE: { status: 503, doc: "The host is not connected." },

  // delivery
  GILD_SIGNATURE_INVALID: {
    status: 422,
    doc: "An artifact manifest's signature does not verify; nothing received.",
  },
  GILD_TRANSFER_FAILED: {
    status: 502,
    doc: "An image transfer failed; it resumes from its offset when retried.",
  },
  GILD_ARTIFACT_NOT_FOUND: { status: 404, doc: "No such artifact on the controller." },

  // commands
  GILD_COMMAND_FAILED: {
    status: 500,
    doc: "A command on a host failed; the message carries the host's reason.",
  },
  GILD_COMMAND_UNKNOWN: { status: 400, doc: "The agent does not know this command kind (version skew)." },
  GILD_COMMAND_CANCELLED: {
    status: 409,
    doc: "A command was withdrawn before the host took it (its rollout failed or ended); it will not run.",
  },

  // apps and runtime
  GILD_APP_NOT_FOUND: { status: 404, doc: "No such app." },
  GILD_APP_EXISTS: { status: 409, doc: "An app with that name already exists." },
  GILD_CONTAINER_START_FAILED: { status: 500, doc: "The app's container did not start." },
  GILD_HEALTH_FAILED: {
    status: 422,
    doc: "The app did not turn healthy within its deadline; the previous generation runs again.",
  },
  GILD_NO_PREVIOUS_GENERATION: { status: 409, doc: "There is no previous generation to roll back to." },
  GILD_ROLLBACK_UNHEALTHY: {
    status: 422,
    doc: "A switch failed and the generation it went back to did not pass its own health gate either: the app does not serve.",
  },

  // rollouts
  GILD_ROLLOUT_NOT_FOUND: { status: 404, doc: "No such rollout." },
  GILD_ROLLOUT_ACTIVE: { status: 409, doc: "A rollout of this image line is already active." },
  GILD_ROLLOUT_STATE: { status: 409, doc: "The rollout is not in a state that allows this verb." },
  GILD_ROLLOUT_NOOP: { status: 409, doc: "Every targeted host already runs that version; nothing to do." },
  GILD_ROLLOUT_NO_HOSTS: {
    status: 400,
    doc: "The rollout selects no host running an app on that image line.",
  },
  GILD_ROLLOUT_FAILED: { status: 422, doc: "The rollout failed; status shows each host's reason." },
  GILD_ROLLBACK_NOT_READY: {
    status: 409,
    doc: "A host of the next wave lacks a previous generation, so it could not be rolled back.",
  },

  // host updates
  GILD_HOST_UPDATE_NOT_FOUND: { status: 404, doc: "No such host update." },
  GILD_HOST_UPDATE_ACTIVE: {
    status: 409,
    doc: "A host update that covers one of these hosts is already active: one job at a time per host.",
  },
  GILD_HOST_UPDATE_STATE: { status: 409, doc: "The host update is not in a state that allows this verb." },
  GILD_HOST_UPDATE_NO_HOSTS: { status: 400, doc: "The host update selects no joined host." },
  GILD_HOST_UPDATE_FAILED: {
    status: 422,
    doc: "The host update failed: a host's command, reboot or health check failed (status shows why). Nothing is undone: hosts keep what the command did.",
  },
  // peer fan-out
  GILD_PEER_TICKET_INVALID: {
    status: 403,
    doc: "A peer refused a chunk request: its transfer ticket is missing, not signed by the controller, expired, or names another host or artifact than the request and the client certificate.",
  },
  GILD_PEER_NOT_HOLDING: {
    status: 404,
    doc: "A peer holds no verified chunk of this artifact (any more); the fetching host asks its next source.",
  },
  GILD_PEER_CHUNK_CORRUPT: {
    status: 422,
    doc: "A source served a chunk whose sha256 differs from the signed manifest's; the host never uses that source again for this transfer, and reports a peer among its bad peers.",
  },
} as const satisfies Record<string, { status: number; doc: string }>;

export type ErrorCode = keyof typeof errorCodes;

export interface GildErrorOptions {
  /** What the operator can do about it, printed under the message. */
  hint?: string | undefined;
  cause?: unknown;
  /** Structured extras (validation problems, host names), sent as they are in API answers. */
  details?: Record<string, unknown> | undefined;
}

/** An error an operator can act on: a stable code, a message, and optionally a hint. */
export class GildError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: GildErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "GildError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  get status(): number {
    return errorCodes[this.code].status;
  }

  toJSON(): SerializedError {
    const out: SerializedError = { code: this.code, message: this.message };
    if (this.hint !== undefined) out.hint = this.hint;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

/** The wire and API form of an error. */
export interface SerializedError {
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCodes, code);
}

export function isGildError(err: unknown, code?: ErrorCode): err is GildError {
  return err instanceof GildError && (code === undefined || err.code === code);
}

/** Rebuild a GildError from its wire form; unknown codes (a newer peer) become GILD_INTERNAL with the code kept. */
export function gildErrorFrom(serialized: SerializedError): GildError {
  if (isErrorCode(serialized.code)) {
    return new GildError(serialized.code, serialized.message, {
      hint: serialized.hint,
      details: serialized.details,
    });
  }
  return new GildError("GILD_INTERNAL", `${serialized.code}: ${serialized.message}`, {
    hint: serialized.hint,
    details: serialized.details,
  });
}

/** Any thrown value as a GildError: GildErrors pass, everything else is wrapped as GILD_INTERNAL. */
export function toGildError(err: unknown): GildError {
  if (err instanceof GildError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GildError("GILD_INTERNAL", message, { cause: err });
}
