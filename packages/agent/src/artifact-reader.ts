// The controller's artifact socket (/v1/artifacts/<id>?offset=N, docs/architecture.md, The wire), read
// without garbage: one read buffer per socket that every read reuses (Node's `onread`), a WebSocket
// client of the few frames this socket carries, and the stream's bytes handed out as views into that
// buffer. A WebSocket library allocates a buffer per read and another per frame; at a few hundred MB/s
// those buffers outlived young-generation collections behind the spool and receive, and the agent spent
// a third of its CPU in major collections (measured: 25 mark-compacts per 266 MiB push).
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { errorFromBody, tlsOptions } from "@gild/api-client";
import { GildError } from "@gild/core";
import { decodeTransferHeader, MAX_FRAME_BYTES } from "@gild/protocol";

export interface ArtifactReadOptions {
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  artifactId: string;
  /** Byte offset to start from (what is already spooled). */
  offset: number;
  /** Size of the whole artifact, from the signed manifest. */
  size: number;
  /**
   * Each piece of the stream, in order: a view into the socket's read buffer, valid only during the
   * call (the next read overwrites it). Throw a GildError to end the transfer with it.
   */
  onData: (piece: Buffer) => void;
  /** Called with the total bytes held so far (offset included). */
  onBytes?: (total: number) => void;
  /** Bytes per second, 0 for no limit. */
  rateLimit: number;
  signal?: AbortSignal;
}

/** A transfer under way: its outcome, and a brake for a consumer that is behind. */
export interface ArtifactRead {
  /** Resolves when all bytes arrived and the controller closed; rejects with a coded error. */
  done: Promise<void>;
  /** Stop reading the socket until resume() (the socket's own buffers then push back on the sender). */
  pause(): void;
  resume(): void;
  /** End the transfer with this error (a consumer that failed outside onData). */
  fail(err: GildError): void;
}

const READ_BUFFER_BYTES = 256 * 1024;
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Largest answer head, and refusal body, read before the upgrade. */
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_REFUSAL_BODY_BYTES = 1024 * 1024;
/** Largest TransferHeader message: a few ids and numbers. */
const MAX_HEADER_MESSAGE_BYTES = 4096;
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const Op = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

function gone(message: string, cause?: unknown): GildError {
  return new GildError("GILD_TRANSFER_FAILED", message, cause === undefined ? {} : { cause });
}

/** A client frame (masked, as RFC 6455 requires of a client) with a payload of at most 125 bytes. */
function controlFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  mask.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return frame;
}

/**
 * True when an artifact socket's first frame is the header of what was asked for, as the signed
 * manifest says; a frame that does not decode is not.
 */
export function isExpectedHeader(
  frame: Buffer,
  expected: { artifactId: string; offset: number; sizeBytes: number },
): boolean {
  try {
    const h = decodeTransferHeader(frame);
    return (
      h.artifactId === expected.artifactId &&
      Number(h.offset) === expected.offset &&
      Number(h.sizeBytes) === expected.sizeBytes
    );
  } catch {
    return false;
  }
}

/**
 * Fetch an artifact from `offset` over its own socket: the WebSocket upgrade, a TransferHeader message
 * checked against the signed manifest, then raw binary frames up to `size`, then the controller's
 * close. A refusal before the upgrade is the controller's coded error.
 */
export function readArtifact(options: ArtifactReadOptions): ArtifactRead {
  const url = new URL(`${options.controllerUrl}/v1/artifacts/${options.artifactId}`);
  url.searchParams.set("offset", String(options.offset));
  const key = randomBytes(16).toString("base64");
  const acceptExpected = createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
  const started = Date.now();

  let settled = false;
  let resolveDone!: () => void;
  let rejectDone!: (err: GildError) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // Awaited by the caller; never an unhandled rejection before it is.
  done.catch(() => undefined);

  // Before the upgrade: the answer's head, then a refusal's body.
  let phase: "head" | "refusal" | "frames" = "head";
  let head = Buffer.alloc(0);
  let refusal: { status: number; length: number; body: Buffer[]; bytes: number } | undefined;
  // The frame being read: its header bytes, then what of its payload is left.
  const frameHead = Buffer.alloc(14);
  let headHave = 0;
  let headNeed = 2;
  let opcode = 0;
  let payloadLeft = 0;
  let inPayload = false;
  // The message a continuation frame continues (control frames may come between its frames).
  let messageOpcode = 0;
  const control: Buffer[] = [];
  let headerMessage: Buffer[] | null = [];
  let headerBytes = 0;
  let received = options.offset;
  let closeReceived = false;

  let pausedByConsumer = false;
  let holdUntil = 0;
  let holdTimer: NodeJS.Timeout | undefined;

  const handshakeTimer = setTimeout(
    () => fail(gone(`no WebSocket upgrade from the controller within ${HANDSHAKE_TIMEOUT_MS / 1000} s`)),
    HANDSHAKE_TIMEOUT_MS,
  );

  const readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  const onread: net.OnReadOpts = {
    buffer: readBuffer,
    callback: (length: number): boolean => {
      if (!settled) {
        try {
          consume(readBuffer, 0, length);
        } catch (err) {
          fail(
            err instanceof GildError
              ? err
              : gone(`reading the artifact socket: ${(err as Error).message}`, err),
          );
        }
      }
      return !settled;
    },
  };
  const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const socket: net.Socket =
    url.protocol === "https:"
      ? tls.connect({
          host,
          port,
          ...(net.isIP(host) ? {} : { servername: host }),
          ...(tlsOptions({ caPem: options.caPem }) as tls.ConnectionOptions),
          // tls.connect takes net's onread (documented; not in its types).
          ...({ onread } as tls.ConnectionOptions),
        })
      : net.connect({ host, port, onread });
  socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => {
    socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\n` +
        `Host: ${url.host}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: Bearer ${options.credential}\r\n\r\n`,
    );
  });
  socket.on("error", (err) => fail(gone(`artifact transfer error: ${err.message}`, err)));
  socket.on("close", () => {
    if (settled) return;
    if (phase === "refusal" && refusal) return refused();
    if (headerMessage === null && received === options.size) return finish();
    fail(
      new GildError(
        "GILD_TRANSFER_FAILED",
        `artifact transfer cut at ${received} of ${options.size} bytes${closeReceived ? " (closed by the controller)" : ""}`,
        { hint: "it resumes from this offset when retried" },
      ),
    );
  });

  const onAbort = () => fail(gone("transfer cancelled", options.signal?.reason));
  if (options.signal?.aborted) queueMicrotask(onAbort);
  else options.signal?.addEventListener("abort", onAbort, { once: true });

  function cleanUp(): void {
    settled = true;
    clearTimeout(handshakeTimer);
    clearTimeout(holdTimer);
    options.signal?.removeEventListener("abort", onAbort);
  }

  function fail(err: GildError): void {
    if (settled) return;
    cleanUp();
    socket.destroy();
    rejectDone(err);
  }

  function finish(): void {
    cleanUp();
    socket.destroy();
    resolveDone();
  }

  /** Read again once neither the consumer nor the rate limit holds the socket back. */
  function maybeResume(): void {
    if (settled || pausedByConsumer) return;
    const wait = holdUntil - Date.now();
    if (wait > 0) {
      // Timers may fire a little early: a hold not yet over is waited out again, not dropped.
      clearTimeout(holdTimer);
      holdTimer = setTimeout(maybeResume, Math.ceil(wait) + 1);
      return;
    }
    socket.resume();
  }

  function consume(buffer: Buffer, start: number, end: number): void {
    let at = start;
    if (phase === "head") {
      at = readHead(buffer, at, end);
      if (phase === "head") return;
    }
    if (phase === "refusal") {
      readRefusal(buffer, at, end);
      return;
    }
    while (at < end && !settled) {
      if (!inPayload) {
        const take = Math.min(headNeed - headHave, end - at);
        buffer.copy(frameHead, headHave, at, at + take);
        headHave += take;
        at += take;
        if (headHave < headNeed) return;
        if (!startFrame()) continue;
      }
      const take = Math.min(payloadLeft, end - at);
      if (take > 0) payload(buffer.subarray(at, at + take));
      at += take;
      payloadLeft -= take;
      if (payloadLeft === 0) endFrame();
    }
  }

  /** The answer's head; returns where the rest starts. */
  function readHead(buffer: Buffer, start: number, end: number): number {
    const before = head.length;
    head = Buffer.concat([head, buffer.subarray(start, end)]);
    const split = head.indexOf("\r\n\r\n");
    if (split < 0) {
      if (head.length > MAX_HEAD_BYTES)
        throw gone("the controller's answer to the upgrade has no end of head");
      return end;
    }
    const lines = head.subarray(0, split).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const rest = start + (split + 4 - before);
    head = Buffer.alloc(0);
    if (status !== 101) {
      phase = "refusal";
      const length = Number(headers.get("content-length") ?? Number.NaN);
      refusal = { status, length: Number.isFinite(length) ? length : -1, body: [], bytes: 0 };
      return rest;
    }
    if (headers.get("sec-websocket-accept") !== acceptExpected)
      throw gone("the controller's WebSocket upgrade does not answer this request's key");
    clearTimeout(handshakeTimer);
    phase = "frames";
    return rest;
  }

  function readRefusal(buffer: Buffer, start: number, end: number): void {
    const r = refusal as NonNullable<typeof refusal>;
    const take = Math.min(end - start, MAX_REFUSAL_BODY_BYTES - r.bytes);
    if (take > 0) {
      r.body.push(Buffer.from(buffer.subarray(start, start + take)));
      r.bytes += take;
    }
    if ((r.length >= 0 && r.bytes >= r.length) || r.bytes >= MAX_REFUSAL_BODY_BYTES) refused();
  }

  function refused(): void {
    const r = refusal as NonNullable<typeof refusal>;
    const text = Buffer.concat(r.body).toString("utf8");
    fail(errorFromBody(text, gone(`artifact request refused with HTTP ${r.status}`)));
  }

  /** The frame header is whole (or needs its extended length): true when its payload follows. */
  function startFrame(): boolean {
    const b0 = frameHead[0] as number;
    const b1 = frameHead[1] as number;
    const len7 = b1 & 0x7f;
    const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    if (headNeed === 2 && extended > 0) {
      headNeed = 2 + extended;
      return false;
    }
    if ((b0 & 0x70) !== 0) throw gone("a frame with reserved bits set on an artifact socket");
    if ((b1 & 0x80) !== 0) throw gone("a masked frame from the controller on an artifact socket");
    const length =
      extended === 0
        ? len7
        : extended === 2
          ? frameHead.readUInt16BE(2)
          : Number(frameHead.readBigUInt64BE(2));
    headHave = 0;
    headNeed = 2;
    opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (opcode >= 8) {
      if (length > 125 || !fin) throw gone("a malformed control frame on an artifact socket");
    } else {
      if (length > MAX_FRAME_BYTES + 4096) throw gone(`a frame of ${length} bytes on an artifact socket`);
      if (opcode === Op.continuation) {
        if (messageOpcode === 0) throw gone("a continuation frame with no message on an artifact socket");
      } else if (messageOpcode !== 0) {
        throw gone("a new message inside another on an artifact socket");
      } else {
        messageOpcode = opcode;
      }
      if (messageOpcode === Op.text) throw gone("text frame on an artifact socket");
      if (fin) messageOpcode = -messageOpcode; // ends with this frame
    }
    payloadLeft = length;
    inPayload = true;
    if (length === 0) {
      payloadLeft = 0;
      endFrame();
      return false;
    }
    return true;
  }

  function payload(piece: Buffer): void {
    if (opcode >= 8) {
      control.push(Buffer.from(piece));
      return;
    }
    if (headerMessage !== null) {
      headerBytes += piece.length;
      if (headerBytes > MAX_HEADER_MESSAGE_BYTES) throw gone("the transfer header is too long");
      headerMessage.push(Buffer.from(piece));
      return;
    }
    received += piece.length;
    if (received > options.size) {
      throw new GildError(
        "GILD_STREAM_SIZE_MISMATCH",
        "the controller sent more bytes than the manifest says",
      );
    }
    options.onData(piece);
    options.onBytes?.(received);
    if (options.rateLimit > 0) {
      const ahead = ((received - options.offset) / options.rateLimit) * 1000 - (Date.now() - started);
      if (ahead > 5) {
        holdUntil = Date.now() + ahead;
        socket.pause();
        maybeResume();
      }
    }
  }

  function endFrame(): void {
    inPayload = false;
    if (opcode >= 8) {
      const data = Buffer.concat(control);
      control.length = 0;
      if (opcode === Op.ping) socket.write(controlFrame(Op.pong, data));
      else if (opcode === Op.close) {
        closeReceived = true;
        // Answer the close with its code, and let the controller end the connection.
        socket.end(controlFrame(Op.close, data.subarray(0, 2)));
      }
      return;
    }
    if (messageOpcode < 0) {
      messageOpcode = 0;
      if (headerMessage !== null) {
        const frame = Buffer.concat(headerMessage);
        headerMessage = null;
        if (!isExpectedHeader(frame, { ...options, sizeBytes: options.size }))
          throw gone("the transfer header does not match the signed manifest");
      }
    }
  }

  return {
    done,
    pause() {
      pausedByConsumer = true;
      socket.pause();
    },
    resume() {
      pausedByConsumer = false;
      maybeResume();
    },
    fail,
  };
}
