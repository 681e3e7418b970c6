import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveControllerConfig } from "../src/config.js";
import { writesGoOut } from "../src/end-of-turn.js";
import { ensureTls } from "../src/pki.js";

// The peer runs on a thread of its own: it takes in bytes while this thread is busy, and says when.
const PEER = `
const { parentPort, workerData } = require("node:worker_threads");
const tls = require("node:tls");
const server = tls.createServer({ key: workerData.keyPem, cert: workerData.certPem }, (socket) => {
  let got = "";
  socket.on("data", (chunk) => {
    got += chunk;
    parentPort.postMessage({ got, at: performance.timeOrigin + performance.now() });
  });
});
server.listen(0, "127.0.0.1", () => parentPort.postMessage({ port: server.address().port }));
`;

/** A synchronous stretch as long as a large planning step. */
const STRETCH_MS = 1_000;

const clock = () => performance.timeOrigin + performance.now();

describe("writes to a TLS socket before a long synchronous stretch", () => {
  let dir: string;
  let peer: Worker;
  let arrivals: Array<{ got: string; at: number }>;
  let socket: TLSSocket;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "gild-writes-go-out-"));
    const tls = ensureTls(
      resolveControllerConfig({ dataDir: join(dir, "data"), pool: join(dir, "pool"), listen: "127.0.0.1:0" }),
    );
    peer = new Worker(PEER, { eval: true, workerData: { keyPem: tls.keyPem, certPem: tls.certPem } });
    const port = await new Promise<number>((resolve) => peer.once("message", (m) => resolve(m.port)));
    arrivals = [];
    peer.on("message", (m: { got: string; at: number }) => arrivals.push(m));
    socket = connect({ host: "127.0.0.1", port, ca: tls.caPem, checkServerIdentity: () => undefined });
    await new Promise((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
  });

  afterAll(async () => {
    socket?.destroy();
    await peer?.terminate();
    await rm(dir, { recursive: true, force: true });
  });

  /** Write two messages, yield with `pause`, stay busy for STRETCH_MS; when each arrived, and the end. */
  async function sendThenStretch(tag: string, pause: () => Promise<void>) {
    const first = `${tag}-first;`;
    const second = `${tag}-second;`;
    socket.write(first);
    socket.write(second);
    await pause();
    const start = clock();
    while (clock() < start + STRETCH_MS) {
      // A planning step's work.
    }
    const end = clock();
    const whole = (text: string) => arrivals.find((a) => a.got.includes(text));
    await new Promise<void>((resolve) => {
      const check = () => (whole(second) ? resolve() : setTimeout(check, 5));
      check();
    });
    return { firstAt: whole(first)?.at as number, secondAt: whole(second)?.at as number, end };
  }

  it("hold the second back until the event loop turns: a microtask's yield is not enough", async () => {
    arrivals.length = 0;
    const { firstAt, secondAt, end } = await sendThenStretch("microtask", () => Promise.resolve());
    expect(firstAt).toBeLessThan(end);
    expect(secondAt).toBeGreaterThanOrEqual(end);
  });

  it("are on the wire before the stretch when it waits for writesGoOut", async () => {
    arrivals.length = 0;
    const { firstAt, secondAt, end } = await sendThenStretch("turned", writesGoOut);
    expect(firstAt).toBeLessThan(end);
    expect(secondAt).toBeLessThan(end);
  });
});
