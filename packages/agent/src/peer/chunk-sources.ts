import type { IncomingMessage } from "node:http";
import { request } from "node:https";
import type { PeerCertificate } from "node:tls";
import { errorFromResponse } from "@gild/api-client";
import { GildError } from "@gild/core";
import type { PeerSource } from "@gild/protocol";
import { isExpectedHeader, openArtifactSocket } from "../artifact-download.js";
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

/**
 * Chunks from a peer's server (peer-server.ts): TLS with this host's certificate, the peer's checked to
 * be of the controller's CA and to name the host the controller said serves there; the ticket in its
 * header. `range` is in bytes but always chunk-aligned.
 */
export function peerRangeReader(
  source: PeerSource,
  artifactId: string,
  chunkSize: number,
  tls: PeerTls,
): RangeReader {
  return async function* (range, signal) {
    const from = range.start / chunkSize;
    const to = Math.ceil(range.end / chunkSize);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        {
          host: source.address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1"),
          port: Number(/:(\d+)$/.exec(source.address)?.[1] ?? "0"),
          method: "GET",
          path: `/v1/peer/artifacts/${artifactId}/chunks?from=${from}&to=${to}`,
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
          if ((res.statusCode ?? 500) < 400) return resolve(res);
          errorFromResponse(res, gone(`peer ${source.hostId} answered HTTP ${res.statusCode}`)).then(reject);
        },
      );
      req.on("error", (err) => reject(gone(`peer ${source.hostId} at ${source.address}`, err)));
      req.end();
    });
    try {
      for await (const data of res) yield data as Buffer;
    } catch (err) {
      throw gone(`peer ${source.hostId} cut the answer`, err as Error);
    }
  };
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
    const ws = openArtifactSocket({ ...options, offset: range.start });
    // Frames queue here and the socket pauses while the consumer is behind.
    const queue: Buffer[] = [];
    let failure: GildError | undefined;
    let ended = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let header = false;
    const onAbort = () => {
      failure ??= gone("cancelled");
      ws.terminate();
      notify();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    ws.on("unexpected-response", (_req, res: IncomingMessage) => {
      void errorFromResponse(res, gone(`artifact request refused with HTTP ${res.statusCode}`)).then((e) => {
        failure ??= e;
        notify();
      });
    });
    ws.on("message", (data: Buffer, isBinary) => {
      if (!isBinary) {
        failure ??= gone("text frame on an artifact socket");
      } else if (!header) {
        header = true;
        if (!isExpectedHeader(data, { ...options, offset: range.start }))
          failure ??= gone("the transfer header does not match the signed manifest");
      } else {
        queue.push(data);
        if (queue.length >= 4) ws.pause();
      }
      notify();
    });
    ws.on("error", (err) => {
      failure ??= gone("artifact transfer error", err);
      notify();
    });
    ws.on("close", () => {
      ended = true;
      notify();
    });
    let position = range.start;
    try {
      while (position < range.end) {
        const data = queue.shift();
        if (data) {
          ws.resume();
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
      signal.removeEventListener("abort", onAbort);
      ws.terminate();
    }
  };
}
