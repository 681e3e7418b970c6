// The agent's artifact socket client against a real WebSocket server (the `ws` the controller uses),
// on loopback without TLS (the agent's dev mode); the TLS path runs in every e2e transfer.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Duplex, Writable } from "node:stream";
import { type ArtifactReadOptions, downloadArtifact, readArtifact } from "@gild/agent";
import { GildError, isGildError } from "@gild/core";
import { encodeTransferHeader } from "@gild/protocol";
import { waitFor } from "@gild/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";

const ARTIFACT = "0123456789abcdef0123456789abcdef";

interface Served {
  url: string;
  /** The request line's path and query, and its authorization header, of each upgrade. */
  requests: Array<{ url: string; authorization: string | undefined }>;
  pongs: Buffer[];
}

let server: Server | undefined;
let wss: WebSocketServer | undefined;
afterEach(async () => {
  for (const ws of wss?.clients ?? []) ws.terminate();
  wss?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  wss = undefined;
});

/** A server whose every artifact socket runs `serve`; `refuse` answers the upgrade instead. */
async function serveArtifacts(
  serve: (ws: WebSocket, offset: number) => void | Promise<void>,
  refuse?: (socket: Duplex) => void,
): Promise<Served> {
  const served: Served = { url: "", requests: [], pongs: [] };
  wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server = createServer();
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    served.requests.push({ url: req.url ?? "", authorization: req.headers.authorization });
    if (refuse) return refuse(socket);
    wss?.handleUpgrade(req, socket, head, (ws) => {
      ws.on("pong", (data: Buffer) => served.pongs.push(data));
      const offset = Number(new URL(req.url ?? "/", "http://x").searchParams.get("offset"));
      void serve(ws, offset);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  served.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return served;
}

const header = (offset: number, sizeBytes: number) =>
  Buffer.from(encodeTransferHeader({ artifactId: ARTIFACT, offset, sizeBytes }));

/** Send the header and `data` (from `offset`) in frames of `frame` bytes, each once the last flushed. */
async function sendStream(
  ws: WebSocket,
  data: Buffer,
  offset: number,
  frame: number,
  size = offset + data.length,
): Promise<void> {
  ws.send(header(offset, size));
  for (let at = 0; at < data.length; at += frame) {
    await new Promise<void>((resolve, reject) =>
      ws.send(data.subarray(at, at + frame), { binary: true }, (err) => (err ? reject(err) : resolve())),
    );
  }
}

/** What every read here asks for: ARTIFACT from the start, no rate limit. */
const target = (url: string, size: number) => ({
  controllerUrl: url,
  credential: "host-credential",
  caPem: null,
  artifactId: ARTIFACT,
  offset: 0,
  size,
  rateLimit: 0,
});

function options(url: string, size: number, overrides: Partial<ArtifactReadOptions> = {}) {
  const pieces: Buffer[] = [];
  const totals: number[] = [];
  const read = readArtifact({
    ...target(url, size),
    // A piece is a view into the read buffer: keep a copy.
    onData: (piece) => pieces.push(Buffer.from(piece)),
    onBytes: (n) => totals.push(n),
    ...overrides,
  });
  return { read, pieces, totals };
}

async function failureOf(done: Promise<void>): Promise<GildError> {
  const err = await done.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GildError);
  return err as GildError;
}

describe("readArtifact", () => {
  it.each([
    ["small frames", 1000],
    ["frames past the 16-bit length", 70_000],
    ["1 MiB frames", 1024 * 1024],
  ])("hands over the stream after its header, in order, from the offset (%s)", async (_what, frame) => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const served = await serveArtifacts(async (ws, offset) => {
      await sendStream(ws, data.subarray(offset), offset, frame);
      ws.close(1000, "complete");
    });
    const offset = 1024 * 1024;
    const { read, pieces, totals } = options(served.url, data.length, { offset });
    await read.done;
    expect(Buffer.concat(pieces).equals(data.subarray(offset))).toBe(true);
    expect(totals.at(-1)).toBe(data.length);
    expect(totals[0]).toBeGreaterThan(offset);
    expect(served.requests).toEqual([
      { url: `/v1/artifacts/${ARTIFACT}?offset=${offset}`, authorization: "Bearer host-credential" },
    ]);
  });

  it("answers a ping with its payload, between the frames of the stream", async () => {
    const data = randomBytes(200_000);
    const served = await serveArtifacts(async (ws) => {
      ws.send(header(0, data.length));
      ws.send(data.subarray(0, 100_000));
      ws.ping(Buffer.from("are you there"));
      await waitFor(() => served.pongs.length > 0, { what: "the pong" });
      ws.send(data.subarray(100_000));
      ws.close(1000);
    });
    const { read, pieces } = options(served.url, data.length);
    await read.done;
    expect(served.pongs.map((p) => p.toString())).toEqual(["are you there"]);
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
  });

  it("takes the controller's coded error from a refused upgrade", async () => {
    const served = await serveArtifacts(
      () => undefined,
      (socket) => {
        const body = JSON.stringify({
          error: { code: "GILD_NOT_FOUND", message: `no artifact ${ARTIFACT}`, hint: "push it again" },
        });
        socket.end(
          `HTTP/1.1 404 GILD_NOT_FOUND\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      },
    );
    const err = await failureOf(options(served.url, 10).read.done);
    expect(err.code).toBe("GILD_NOT_FOUND");
    expect(err.message).toBe(`no artifact ${ARTIFACT}`);
  });

  it("reports a cut with where it stopped, and the pieces before it stay handed over", async () => {
    const data = randomBytes(300_000);
    const served = await serveArtifacts(async (ws) => {
      await sendStream(ws, data.subarray(0, 120_000), 0, 60_000, data.length);
      ws.terminate();
    });
    // The header says the whole size; the socket ends early.
    const { read, pieces } = options(served.url, data.length);
    const err = await failureOf(read.done);
    expect(err.code).toBe("GILD_TRANSFER_FAILED");
    expect(err.message).toContain(`cut at 120000 of ${data.length} bytes`);
    expect(Buffer.concat(pieces).equals(data.subarray(0, 120_000))).toBe(true);
  });

  it.each([
    [
      "a header for another artifact",
      (ws: WebSocket) =>
        ws.send(Buffer.from(encodeTransferHeader({ artifactId: "ffff", offset: 0, sizeBytes: 10 }))),
      "GILD_TRANSFER_FAILED",
      /header does not match/,
    ],
    [
      "a text frame",
      (ws: WebSocket) => {
        ws.send(header(0, 10));
        ws.send("hello");
      },
      "GILD_TRANSFER_FAILED",
      /text frame/,
    ],
    [
      "more bytes than the manifest says",
      (ws: WebSocket) => {
        ws.send(header(0, 10));
        ws.send(randomBytes(11));
      },
      "GILD_STREAM_SIZE_MISMATCH",
      /more bytes/,
    ],
  ])("refuses %s", async (_what, send, code, message) => {
    const served = await serveArtifacts((ws) => send(ws));
    const err = await failureOf(options(served.url, 10).read.done);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it("ends with the error its consumer throws, and reads nothing after it", async () => {
    const data = randomBytes(500_000);
    const served = await serveArtifacts(async (ws) => {
      await sendStream(ws, data, 0, 50_000);
      ws.close(1000);
    });
    let calls = 0;
    const { read } = options(served.url, data.length, {
      onData: () => {
        calls++;
        throw new GildError("GILD_STREAM_HASH_MISMATCH", "chunk 0 of 1 has another sha256");
      },
    });
    const err = await failureOf(read.done);
    expect(isGildError(err, "GILD_STREAM_HASH_MISMATCH")).toBe(true);
    expect(calls).toBe(1);
  });

  it("reads nothing while paused, and all of it once resumed", async () => {
    const data = randomBytes(48 * 1024 * 1024);
    let sender: WebSocket | undefined;
    const served = await serveArtifacts((ws) => {
      sender = ws;
      ws.send(header(0, data.length));
      for (let at = 0; at < data.length; at += 1024 * 1024) ws.send(data.subarray(at, at + 1024 * 1024));
      ws.close(1000);
    });
    let received = 0;
    let atPause = -1;
    const read = readArtifact({
      ...target(served.url, data.length),
      onData: (piece) => {
        received += piece.length;
        if (atPause < 0) {
          atPause = received;
          read.pause();
        }
      },
    });
    // The kernel's socket buffers are full and the rest waits in the sender: the reader is not reading.
    await waitFor(() => (sender?.bufferedAmount ?? 0) > 16 * 1024 * 1024, { what: "the sender to back up" });
    expect(received).toBe(atPause);
    read.resume();
    await read.done;
    expect(received).toBe(data.length);
  });

  it("stops when its signal is aborted", async () => {
    const served = await serveArtifacts((ws) => {
      ws.send(header(0, 100));
      ws.send(randomBytes(10));
    });
    const abort = new AbortController();
    const { read } = options(served.url, 100, {
      signal: abort.signal,
      onData: () => abort.abort(new Error("operator cancelled")),
    });
    const err = await failureOf(read.done);
    expect(err.code).toBe("GILD_TRANSFER_FAILED");
    expect(err.message).toBe("transfer cancelled");
  });
});

describe("downloadArtifact", () => {
  /** A sink that takes each write on a later turn, keeping what it was given meanwhile. */
  function slowSink(fail?: NodeJS.ErrnoException): { sink: Writable; kept: Buffer[] } {
    const kept: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        setImmediate(() => {
          if (fail && kept.length > 3) return callback(fail);
          kept.push(chunk);
          callback();
        });
      },
    });
    return { sink, kept };
  }

  it("gives each sink its own copy of every piece, pausing while a sink is behind", async () => {
    const data = randomBytes(6 * 1024 * 1024);
    const served = await serveArtifacts(async (ws) => {
      await sendStream(ws, data, 0, 1024 * 1024);
      ws.close(1000);
    });
    const a = slowSink();
    const b = slowSink();
    const hashed: Buffer[] = [];
    await downloadArtifact({
      ...target(served.url, data.length),
      sinks: [a.sink, b.sink],
      onChunk: (chunk) => hashed.push(chunk),
    });
    // The read buffer was used again for every read: only copies come out whole.
    expect(Buffer.concat(a.kept).equals(data)).toBe(true);
    expect(Buffer.concat(b.kept).equals(data)).toBe(true);
    expect(Buffer.concat(hashed).equals(data)).toBe(true);
  });

  it("ends with GILD_NO_SPACE when a sink's disk is full", async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const served = await serveArtifacts(async (ws) => {
      await sendStream(ws, data, 0, 256 * 1024);
      ws.close(1000);
    });
    const full = Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
    const { sink } = slowSink(full);
    const err = await failureOf(downloadArtifact({ ...target(served.url, data.length), sinks: [sink] }));
    expect(err.code).toBe("GILD_NO_SPACE");
  });
});
