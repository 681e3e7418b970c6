import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { joinController } from "@gild/agent";
import { tlsOptions } from "@gild/api-client";
import { CloseCode, decodeTransferHeader, MAX_FRAME_BYTES } from "@gild/protocol";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { frameHeaderBefore } from "../src/transfer-server.js";
import { startTestController, type TestController } from "./support.js";

interface Fetched {
  header: ReturnType<typeof decodeTransferHeader>;
  frames: Buffer[];
  close: number;
}

describeWith(["root", "btrfs"], "artifact transfers", () => {
  let c: TestController;
  let credential: string;
  let id: string;
  let file: Buffer;

  /**
   * Everything the transfer socket sends from `offset`: read as fast as it comes, or one frame per
   * `paceMs` (a slow reader, so the controller's frames queue behind a full socket).
   */
  function fetch(offset: number, paceMs = 0): Promise<Fetched> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${c.url.replace("https", "wss")}/v1/artifacts/${id}?offset=${offset}`, {
        ...tlsOptions({ caPem: c.tls.caPem }),
        headers: { authorization: `Bearer ${credential}` },
        perMessageDeflate: false,
        maxPayload: 2 * MAX_FRAME_BYTES,
      });
      const messages: Buffer[] = [];
      ws.on("message", (data: Buffer) => {
        messages.push(data);
        if (paceMs === 0) return;
        ws.pause();
        setTimeout(() => ws.resume(), paceMs);
      });
      ws.on("error", reject);
      ws.on("close", (code) => {
        const [first, ...frames] = messages;
        if (!first) return reject(new Error(`closed ${code} before the header`));
        resolve({ header: decodeTransferHeader(first), frames, close: code });
      });
    });
  }

  beforeAll(async () => {
    c = await startTestController();
    const res = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { authorization: `Bearer ${c.adminToken}` },
      payload: {},
    });
    const stateDir = join(c.fs.dir, "agent");
    await joinController({
      controllerUrl: c.url,
      token: res.json<{ token: string }>().token,
      name: "reader",
      labels: {},
      stateDir,
    });
    credential = readFileSync(join(stateDir, "credential"), "utf8").trim();
    // Frames whose last one is partial (the edges of the read-buffer ring), and more of them than the
    // socket buffers of both ends hold, so a slow reader makes the controller's frames wait.
    const tree = join(c.fs.dir, "tree");
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, "payload.bin"), randomBytes(24 * MAX_FRAME_BYTES + 12_345));
    await c.controller.services.imageBuilder.createFromDir("t", tree);
    const artifact = await c.controller.services.artifacts.ensure("t", 1, null, 1);
    id = artifact.id;
    file = readFileSync(c.controller.services.artifacts.filePath(id));
    expect(file.length).toBe(artifact.sizeBytes);
    expect(file.length).toBeGreaterThan(24 * MAX_FRAME_BYTES);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("sends exactly the file from any offset, in frames of at most 1 MiB, then closes normally", async () => {
    const offsets = [0, 1, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 7, file.length - 1, file.length];
    for (const offset of offsets) {
      const got = await fetch(offset);
      expect(got.header).toMatchObject({ artifactId: id, offset, sizeBytes: file.length });
      expect(got.close).toBe(CloseCode.normal);
      for (const frame of got.frames) expect(frame.length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
      // Reused read buffers must not show through: each frame holds the bytes of its own position.
      expect(Buffer.concat(got.frames).equals(file.subarray(offset)), `offset ${offset}`).toBe(true);
    }
  });

  it("serves a slow reader and fast ones of one artifact at once, each its own bytes", async () => {
    // A read buffer is reused only once its frame left for the kernel: a frame still queued behind
    // the slow reader's full socket must not be overwritten by a later read.
    const offsets = [0, 3, MAX_FRAME_BYTES + 1];
    const all = await Promise.all(offsets.map((offset, i) => fetch(offset, i === 0 ? 40 : 0)));
    all.forEach((got, i) => {
      const offset = offsets[i] as number;
      expect(Buffer.concat(got.frames).equals(file.subarray(offset)), `offset ${offset}`).toBe(true);
    });
  });
});

describe("the transfer server's frame header", () => {
  it("writes the shortest length form before the payload, as RFC 6455 reads it", () => {
    for (const [length, head] of [
      [5, [0x82, 5]],
      [125, [0x82, 125]],
      [126, [0x82, 126, 0, 126]],
      [65535, [0x82, 126, 0xff, 0xff]],
      [65536, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]],
      [MAX_FRAME_BYTES, [0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 0]],
    ] as const) {
      const buffer = Buffer.alloc(10 + length);
      const start = frameHeaderBefore(buffer, length);
      expect(start + head.length).toBe(10);
      expect([...buffer.subarray(start, 10)]).toEqual(head);
    }
  });
});
