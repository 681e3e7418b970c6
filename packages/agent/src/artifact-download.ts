import type { IncomingMessage } from "node:http";
import type { Writable } from "node:stream";
import { errorFromResponse, tlsOptions } from "@gild/api-client";
import { GildError } from "@gild/core";
import { decodeTransferHeader, MAX_FRAME_BYTES } from "@gild/protocol";
import WebSocket from "ws";

export interface DownloadOptions {
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  artifactId: string;
  /** Byte offset to start from (what is already spooled). */
  offset: number;
  /** Size of the whole artifact, from the signed manifest. */
  size: number;
  /** Where the bytes go, in order; the socket pauses until every sink drained. */
  sinks: Writable[];
  /** Called with the total bytes held so far (offset included). */
  onBytes?: (total: number) => void;
  /** Called with every chunk, in order, before it is written (to hash the stream as it arrives). */
  onChunk?: (chunk: Buffer) => void;
  /** Bytes per second, 0 for no limit. */
  rateLimit: number;
  signal?: AbortSignal;
}

/**
 * The coded error for a sink that failed: its own when it has one (a chunk that failed its digest),
 * GILD_NO_SPACE for a full disk or quota.
 */
export function sinkFailure(err: NodeJS.ErrnoException): GildError {
  if (err instanceof GildError) return err;
  if (err.code === "ENOSPC" || err.code === "EDQUOT") {
    return new GildError("GILD_NO_SPACE", `no space left to store the download: ${err.message}`, {
      hint: "free space on the host's pool (gild image rm <line>@<old version> --hosts <host>), then push again",
      cause: err,
    });
  }
  return new GildError("GILD_INTERNAL", `writing the download failed: ${err.message}`, { cause: err });
}

/** True for failures another attempt may fix (a cut connection); false for refusals. */
export function isRetryable(err: unknown): boolean {
  return err instanceof GildError && (err.code === "GILD_TRANSFER_FAILED" || err.code === "GILD_UNAVAILABLE");
}

/** The controller's artifact socket (/v1/artifacts/<id>?offset=N): a TransferHeader frame, then raw frames. */
export function openArtifactSocket(options: {
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  artifactId: string;
  offset: number;
}): WebSocket {
  const url = `${options.controllerUrl.replace(/^http/, "ws")}/v1/artifacts/${options.artifactId}?offset=${options.offset}`;
  return new WebSocket(url, {
    headers: { authorization: `Bearer ${options.credential}` },
    maxPayload: MAX_FRAME_BYTES + 4096,
    perMessageDeflate: false,
    handshakeTimeout: 15_000,
    ...tlsOptions({ caPem: options.caPem }),
  });
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
 * Fetch an artifact from `offset` over its own WebSocket: a TransferHeader, then raw frames. The
 * socket is paused whenever a sink pushes back, so memory stays bounded whatever the artifact size.
 * Resolves when all `size` bytes arrived and the controller closed normally.
 */
export function downloadArtifact(options: DownloadOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = options.offset;
    let header = false;
    let settled = false;
    let pending = 0;
    let holdUntil = 0;
    const started = Date.now();
    // The socket reads again only when every sink drained and the rate limit allows it. Timers may
    // fire a little early, so a hold not yet over is waited out again rather than dropped.
    let holdTimer: NodeJS.Timeout | undefined;
    const maybeResume = () => {
      if (settled || pending > 0) return;
      const wait = holdUntil - Date.now();
      if (wait > 0) {
        clearTimeout(holdTimer);
        holdTimer = setTimeout(maybeResume, Math.ceil(wait) + 1);
        return;
      }
      ws.resume();
    };
    const ws = openArtifactSocket(options);
    const fail = (err: GildError) => {
      if (settled) return;
      settled = true;
      clearTimeout(holdTimer);
      options.signal?.removeEventListener("abort", onAbort);
      ws.terminate();
      reject(err);
    };
    const onAbort = () =>
      fail(new GildError("GILD_TRANSFER_FAILED", "transfer cancelled", { cause: options.signal?.reason }));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    // A sink that cannot write (a full disk) ends the transfer with a coded error; without a listener
    // its 'error' event would be unhandled and take the whole agent down.
    for (const sink of options.sinks) sink.on("error", (err: Error) => fail(sinkFailure(err)));

    ws.on("unexpected-response", (_req, res: IncomingMessage) => {
      const fallback = new GildError(
        "GILD_TRANSFER_FAILED",
        `artifact request refused with HTTP ${res.statusCode}`,
      );
      void errorFromResponse(res, fallback).then(fail);
    });
    ws.on("message", (data: Buffer, isBinary) => {
      if (!isBinary) return fail(new GildError("GILD_TRANSFER_FAILED", "text frame on an artifact socket"));
      if (!header) {
        header = true;
        if (!isExpectedHeader(data, { ...options, sizeBytes: options.size })) {
          return fail(
            new GildError("GILD_TRANSFER_FAILED", "the transfer header does not match the signed manifest"),
          );
        }
        return;
      }
      received += data.length;
      if (received > options.size)
        return fail(
          new GildError("GILD_STREAM_SIZE_MISMATCH", "the controller sent more bytes than the manifest says"),
        );
      options.onChunk?.(data);
      for (const sink of options.sinks) {
        if (!sink.write(data)) {
          pending++;
          sink.once("drain", () => {
            pending--;
            maybeResume();
          });
        }
      }
      if (pending > 0) ws.pause();
      options.onBytes?.(received);
      if (options.rateLimit > 0) {
        const ahead = ((received - options.offset) / options.rateLimit) * 1000 - (Date.now() - started);
        if (ahead > 5) {
          holdUntil = Date.now() + ahead;
          ws.pause();
          maybeResume();
        }
      }
    });
    ws.on("error", (err) =>
      fail(new GildError("GILD_TRANSFER_FAILED", `artifact transfer error: ${err.message}`, { cause: err })),
    );
    ws.on("close", (code) => {
      if (settled) return;
      if (received === options.size && header) {
        settled = true;
        clearTimeout(holdTimer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve();
        return;
      }
      fail(
        new GildError(
          "GILD_TRANSFER_FAILED",
          `artifact transfer cut at ${received} of ${options.size} bytes (close ${code})`,
          {
            hint: "it resumes from this offset when retried",
          },
        ),
      );
    });
  });
}
