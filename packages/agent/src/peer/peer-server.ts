import { type FileHandle, open } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import { GildError, type Logger, toGildError } from "@gild/core";
import { chunkLength } from "../chunk-assembler.js";
import { heldChunks, type PeerHoldings } from "./peer-holdings.js";
import { checkPeerTicket, PEER_TICKET_HEADER } from "./peer-ticket.js";

export interface PeerTls {
  certPem: string;
  keyPem: string;
  /** The controller's CA: the only issuer of client (and server) certificates peers accept. */
  caPem: string;
}

/** How long a request waits for its first chunk, not verified here yet, before it is refused. */
export const CHUNK_WAIT_MS = 60_000;
/** While a request waits for its first chunk, a heartbeat (102 Processing) goes out this often... */
export const HEARTBEAT_MS = 2_000;
/** ...when this host's own download got bytes within this long: the waiting host's stall timer. */
const MOVING_MS = 10_000;
/** Once an answer began, how long it waits for each next chunk before it ends short. */
const NEXT_CHUNK_WAIT_MS = 2_000;
/** Most chunks one request may ask for. */
const MAX_CHUNKS_PER_REQUEST = 1024;
/** Answers open at once; more are refused with 503 (the fetching host tries its next source). */
const MAX_OPEN_ANSWERS = 32;

/** Paces every upload of this server together: at most `rate` bytes per second in all (0: no limit). */
class UploadPace {
  private nextFree = 0;
  constructor(private readonly rate: number) {}
  /** Wait until `bytes` more may be sent. */
  async take(bytes: number): Promise<void> {
    if (this.rate <= 0) return;
    const now = Date.now();
    const start = Math.max(now, this.nextFree);
    this.nextFree = start + (bytes / this.rate) * 1000;
    if (start > now) await delay(start - now);
  }
}

function sendError(res: ServerResponse, err: GildError): void {
  const body = JSON.stringify({ error: err.toJSON() });
  res.writeHead(err.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * The peer server (`--peer-listen`): serves verified chunks of the artifacts this host holds to other
 * hosts of the fleet (docs/architecture.md, Peer fan-out). TLS with a client certificate of the
 * controller's CA required, and per request a ticket the controller signed naming the client's host,
 * this host and the artifact. GET /v1/peer/artifacts/<id>/chunks?from=I&to=J answers the bytes of
 * chunks [I, J) in order, each sent only once this host verified it. The answer begins with chunk I
 * verified: until then (up to CHUNK_WAIT_MS) a 102 Processing goes out every HEARTBEAT_MS while this
 * host's own download moves, so the waiting host gives up on it only when the whole chain stalls.
 * Within the answer each next chunk is waited for NEXT_CHUNK_WAIT_MS, then the answer ends short and
 * the client asks again from there. Writes wait for the socket to drain, and all uploads together
 * keep to `uploadRate`.
 */
export class PeerServer {
  private readonly server: Server;
  private readonly pace: UploadPace;
  private readonly log: Logger;
  private readonly closing = new AbortController();
  private open = 0;

  constructor(
    private readonly deps: {
      hostId: string;
      tls: PeerTls;
      holdings: PeerHoldings;
      signingPublicKeyPem: string;
      /** Bytes per second for all uploads together, 0 for no limit. */
      uploadRate: number;
      log: Logger;
      now?: () => number;
    },
  ) {
    this.log = deps.log.child({ component: "peer-server" });
    this.pace = new UploadPace(deps.uploadRate);
    this.server = createServer(
      {
        cert: deps.tls.certPem,
        key: deps.tls.keyPem,
        ca: [deps.tls.caPem],
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: 10_000,
      },
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => {
          this.log.warn({ err: (err as Error).message }, "chunk answer failed");
          res.destroy();
        });
      },
    );
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 0;
  }

  /** Listen; resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** A renewed certificate, for connections from now on. */
  setCertificate(tls: PeerTls): void {
    this.server.setSecureContext({ cert: tls.certPem, key: tls.keyPem, ca: [tls.caPem] });
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://peer");
    const m = /^\/v1\/peer\/artifacts\/([0-9a-f]{32})\/chunks$/.exec(url.pathname);
    if (req.method !== "GET" || !m?.[1]) {
      sendError(res, new GildError("GILD_NOT_FOUND", `no peer endpoint at ${req.method} ${url.pathname}`));
      return;
    }
    const artifactId = m[1];
    // The TLS layer already refused a client without a certificate of the controller's CA.
    const cn: string | string[] | undefined = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
    const requester = typeof cn === "string" ? cn : "";
    let from: number;
    let to: number;
    try {
      checkPeerTicket(
        req.headers[PEER_TICKET_HEADER] as string | undefined,
        {
          artifactId,
          serverHostId: this.deps.hostId,
          requesterHostId: requester,
          now: (this.deps.now ?? Date.now)(),
        },
        this.deps.signingPublicKeyPem,
      );
      const holding = this.deps.holdings.get(artifactId);
      if (!holding || holding.chunkSize === 0)
        throw new GildError("GILD_PEER_NOT_HOLDING", `this host holds no chunk of artifact ${artifactId}`);
      from = Number(url.searchParams.get("from") ?? "x");
      to = Number(url.searchParams.get("to") ?? "x");
      const count = heldChunks(holding);
      if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to <= from || to > count)
        throw new GildError(
          "GILD_BAD_REQUEST",
          `chunks [${from}, ${to}) are not within the artifact's ${count}`,
        );
      if (to - from > MAX_CHUNKS_PER_REQUEST)
        throw new GildError("GILD_BAD_REQUEST", `at most ${MAX_CHUNKS_PER_REQUEST} chunks per request`);
      if (this.open >= MAX_OPEN_ANSWERS)
        throw new GildError("GILD_UNAVAILABLE", "too many chunk answers open");
    } catch (err) {
      const gild = toGildError(err);
      this.log.info({ requester, artifactId, code: gild.code }, `chunk request refused: ${gild.message}`);
      sendError(res, gild);
      return;
    }
    this.open++;
    try {
      await this.stream(res, artifactId, from, to, requester);
    } finally {
      this.open--;
    }
  }

  private async stream(
    res: ServerResponse,
    artifactId: string,
    from: number,
    to: number,
    requester: string,
  ): Promise<void> {
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.on("close", onClose);
    this.closing.signal.addEventListener("abort", onClose, { once: true });
    let sent = 0;
    let file: FileHandle | undefined;
    let filePath = "";
    try {
      const first = await this.waitForFirst(res, artifactId, from, gone.signal);
      if (first !== true) {
        if (!gone.signal.aborted) {
          this.log.info({ requester, artifactId, code: first.code }, `chunk request ended: ${first.message}`);
          sendError(res, first);
        }
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream" });
      for (let index = from; index < to; index++) {
        if (index > from) {
          const wait = AbortSignal.any([gone.signal, AbortSignal.timeout(NEXT_CHUNK_WAIT_MS)]);
          if (!(await this.deps.holdings.waitFor(artifactId, index, wait))) break;
        }
        const holding = this.deps.holdings.get(artifactId);
        if (!holding) break;
        // The spool becomes the cache by a rename: open the file where it is now.
        if (holding.path !== filePath) {
          await file?.close();
          file = await open(holding.path, "r");
          filePath = holding.path;
        }
        if (!file) break;
        const length = chunkLength(holding, index);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await file.read(buffer, 0, length, index * holding.chunkSize);
        if (bytesRead !== length) break;
        await this.pace.take(length);
        if (gone.signal.aborted) break;
        sent += length;
        if (!res.write(buffer)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off("drain", done);
              gone.signal.removeEventListener("abort", done);
              resolve();
            };
            res.once("drain", done);
            gone.signal.addEventListener("abort", done, { once: true });
          });
        }
      }
      // An answer short of `to` tells the client this host has no more for now: it asks again from
      // there, or another source.
      if (gone.signal.aborted) res.destroy();
      else res.end();
    } finally {
      await file?.close();
      this.closing.signal.removeEventListener("abort", onClose);
      res.off("close", onClose);
    }
    this.log.debug({ requester, artifactId, from, to, bytes: sent }, "chunks served");
  }

  /**
   * Wait until chunk `index` is verified: true then. Meanwhile a heartbeat goes out every HEARTBEAT_MS
   * while this host's own download moves. A GildError when it never will be here (the download
   * stopped) or not within CHUNK_WAIT_MS.
   */
  private async waitForFirst(
    res: ServerResponse,
    artifactId: string,
    index: number,
    gone: AbortSignal,
  ): Promise<true | GildError> {
    const { holdings } = this.deps;
    const deadline = Date.now() + CHUNK_WAIT_MS;
    for (;;) {
      const left = deadline - Date.now();
      const wait = AbortSignal.any([gone, AbortSignal.timeout(Math.max(1, Math.min(HEARTBEAT_MS, left)))]);
      if (await holdings.waitFor(artifactId, index, wait)) return true;
      if (!holdings.get(artifactId)?.growing)
        return new GildError("GILD_PEER_NOT_HOLDING", `this host stopped downloading artifact ${artifactId}`);
      if (gone.aborted || Date.now() >= deadline)
        return new GildError(
          "GILD_UNAVAILABLE",
          `chunk ${index} of artifact ${artifactId} was not verified here within ${CHUNK_WAIT_MS / 1000} s`,
        );
      if (holdings.isMoving(artifactId, MOVING_MS)) res.writeProcessing();
    }
  }
}
