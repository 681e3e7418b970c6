import type { IncomingMessage } from "node:http";
import { request } from "node:https";
import { setTimeout as delay } from "node:timers/promises";
import type { PeerCertificate } from "node:tls";
import { errorFromResponse } from "@gild/api-client";
import { GildError } from "@gild/core";
import type { PeerSource } from "@gild/protocol";
import { readArtifact } from "../artifact-reader.js";
import type { PeerTls } from "./peer-server.js";
import { ticketHeaderValue } from "./peer-ticket.js";

/** Bytes of a byte range as they arrive; the range ends early when the source has no more. */
export type RangeReader = (
  range: { start: number; end: number },
  signal: AbortSignal,
) => AsyncIterable<Buffer>;

function gone(what: string, err?: Error): GildError {
  return new GildError(
    "GILD_TRANSFER_FAILED",
    `${what}${err ? `: ${err.message}` : ""}`,
    err ? { cause: err } : {},
  );
}

/** How long a source still downloading itself is asked again after it said it holds nothing yet. */
const NOT_YET_RETRY_MS = [100, 250, 500, 1_000, 2_000];

/**
 * Chunks from a peer's server (peer-server.ts): TLS with this host's certificate, the peer's checked to
 * be of the controller's CA and to name the host the controller said serves there; the ticket in its
 * header. `range` is in bytes but always chunk-aligned. Each heartbeat the peer sends while it waits
 * for its own download (102 Processing) comes out as an empty Buffer: word that bytes are coming. A
 * source the controller named while it still downloads (`downloading`) may not have begun yet: its
 * GILD_PEER_NOT_HOLDING is asked again after a pause, until the signal ends it (the fetcher's stall
 * timer, which these pauses do not reset).
 */
export function peerRangeReader(
  source: PeerSource,
  artifactId: string,
  chunkSize: number,
  tls: PeerTls,
): RangeReader {
  return async function* (range, signal) {
    const path = `/v1/peer/artifacts/${artifactId}/chunks?from=${range.start / chunkSize}&to=${Math.ceil(range.end / chunkSize)}`;
    let res: IncomingMessage | undefined;
    for (let attempt = 0; !res; attempt++) {
      const answer = peerRequest(source, path, tls, signal);
      try {
        for await (const event of answer) {
          if (event === "heartbeat") yield Buffer.alloc(0);
          else res = event;
        }
      } catch (err) {
        const notYet = source.downloading === true && (err as GildError).code === "GILD_PEER_NOT_HOLDING";
        if (!notYet || signal.aborted) throw err;
        const pause = NOT_YET_RETRY_MS[Math.min(attempt, NOT_YET_RETRY_MS.length - 1)] as number;
        await delay(pause, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) throw err;
      }
    }
    try {
      for await (const data of res) yield data as Buffer;
    } catch (err) {
      throw gone(`peer ${source.hostId} cut the answer`, err as Error);
    }
  };
}

/** One request to a peer's server: its heartbeats while it waits, then its answer (an error for 4xx/5xx). */
async function* peerRequest(
  source: PeerSource,
  path: string,
  tls: PeerTls,
  signal: AbortSignal,
): AsyncGenerator<"heartbeat" | IncomingMessage> {
  const events: Array<"heartbeat" | IncomingMessage> = [];
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const push = (event: "heartbeat" | IncomingMessage) => {
    events.push(event);
    wake?.();
  };
  const req = request(
    {
      host: source.address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1"),
      port: Number(/:(\d+)$/.exec(source.address)?.[1] ?? "0"),
      method: "GET",
      path,
      headers: { "x-gild-peer-ticket": ticketHeaderValue(source.ticket, source.ticketSignature) },
      cert: tls.certPem,
      key: tls.keyPem,
      ca: [tls.caPem],
      // The certificate must be the one the controller issued to the host it named, whatever the
      // address: a certificate of the CA alone would let any enrolled host pose as any other.
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        cert.subject?.CN === source.hostId
          ? undefined
          : new Error(`the peer's certificate names ${cert.subject?.CN}, not ${source.hostId}`),
      signal,
      agent: false,
    },
    (res) => {
      if ((res.statusCode ?? 500) < 400) return push(res);
      void errorFromResponse(res, gone(`peer ${source.hostId} answered HTTP ${res.statusCode}`)).then((e) => {
        failure ??= e;
        wake?.();
      });
    },
  );
  req.on("information", (info) => {
    if (info.statusCode === 102) push("heartbeat");
  });
  req.on("error", (err) => {
    failure ??= gone(`peer ${source.hostId} at ${source.address}`, err);
    wake?.();
  });
  req.end();
  let answered = false;
  try {
    for (;;) {
      const event = events.shift();
      if (event === "heartbeat") {
        yield event;
        continue;
      }
      if (event) {
        answered = true;
        yield event;
        return;
      }
      if (failure) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    // Left before its answer was taken (the caller stopped, or it failed): nothing may stay open.
    if (!answered) req.destroy();
  }
}

/**
 * Bytes from the controller's artifact socket (/v1/artifacts/<id>?offset=N, docs/architecture.md, The
 * wire), closed once `end` is reached: the controller reads ahead only a small ring, so little more
 * than the range leaves it.
 */
export function controllerRangeReader(options: {
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  artifactId: string;
  sizeBytes: number;
}): RangeReader {
  return async function* (range, signal) {
    // Pieces queue here (copies: the reader's are views into its read buffer) and the socket pauses
    // while the consumer is behind.
    const queue: Buffer[] = [];
    let failure: GildError | undefined;
    let ended = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const read = readArtifact({
      ...options,
      offset: range.start,
      size: options.sizeBytes,
      rateLimit: 0,
      signal,
      onData: (piece) => {
        queue.push(Buffer.from(piece));
        if (queue.length >= 4) read.pause();
        notify();
      },
    });
    read.done.then(
      () => {
        ended = true;
        notify();
      },
      (err: GildError) => {
        failure ??= err;
        notify();
      },
    );
    let position = range.start;
    try {
      while (position < range.end) {
        const data = queue.shift();
        if (data) {
          read.resume();
          const want = range.end - position;
          const piece = data.length > want ? data.subarray(0, want) : data;
          position += piece.length;
          yield piece;
          continue;
        }
        if (failure) throw failure;
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      // The range is read (or its consumer left): the rest of the artifact is not wanted.
      read.fail(gone("range read"));
    }
  };
}
