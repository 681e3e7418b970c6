import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ChunkFiller,
  type ChunkLayout,
  chunkLayoutOf,
  trimSpoolToVerified,
  type VerifiedChunk,
} from "@gild/agent";
import { isGildError } from "@gild/core";
import { BufferPool } from "@gild/protocol";
import { afterAll, describe, expect, it } from "vitest";

const sha = (b: Buffer) => createHash("sha256").update(b).digest();

function layoutOf(stream: Buffer, chunkSize: number): ChunkLayout {
  const digests: Buffer[] = [];
  for (let at = 0; at < stream.length; at += chunkSize)
    digests.push(sha(stream.subarray(at, at + chunkSize)));
  return { sizeBytes: stream.length, chunkSize, digests };
}

/** Cut a buffer into pieces of the given sizes, cycling. */
function pieces(stream: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < stream.length; i++) {
    const n = sizes[i % sizes.length] as number;
    out.push(stream.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe("ChunkFiller", () => {
  const stream = randomBytes(10_000);
  const layout = layoutOf(stream, 1024);

  it.each([[[1]], [[7, 1500, 3]], [[1024]], [[4096]], [[10_000]], [[333, 2048, 1]]])(
    "hands out every chunk once whole and matched, whatever the pieces (%j)",
    (sizes) => {
      const seen: Buffer[] = [];
      const filler = new ChunkFiller(layout, 0, (c) => {
        expect(c.offset).toBe(c.index * 1024);
        seen.push(Buffer.concat(c.buffers));
        expect(Buffer.concat(c.buffers).length).toBe(c.bytes);
      });
      for (const piece of pieces(stream, sizes)) filler.push(piece);
      expect(seen.length).toBe(10);
      expect(Buffer.concat(seen).equals(stream)).toBe(true);
      expect(filler.partialBytes).toBe(0);
    },
  );

  it("copies each piece at once, so a piece may be a view into a buffer the next read overwrites", () => {
    const seen: VerifiedChunk[] = [];
    const filler = new ChunkFiller(layout, 0, (c) => seen.push(c));
    const scratch = Buffer.alloc(700);
    for (let at = 0; at < stream.length; at += 700) {
      const n = stream.copy(scratch, 0, at, at + 700);
      filler.push(scratch.subarray(0, n));
      scratch.fill(0xee);
    }
    expect(seen.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Buffer.concat(seen.flatMap((c) => c.buffers)).equals(stream)).toBe(true);
    expect(seen.at(-1)?.bytes).toBe(10_000 - 9 * 1024);
    expect(filler.inUse).toBe(10);
    expect(filler.partialBytes).toBe(0);
  });

  it("uses a released chunk's buffer again, and only a released one", () => {
    const seen: VerifiedChunk[] = [];
    const filler = new ChunkFiller(layout, 0, (c) => seen.push(c));
    filler.push(stream.subarray(0, 2048));
    const [first, second] = seen as [VerifiedChunk, VerifiedChunk];
    expect(first.buffers[0]?.buffer).not.toBe(second.buffers[0]?.buffer);
    first.release?.();
    first.release?.(); // twice is once
    expect(filler.inUse).toBe(1);
    filler.push(stream.subarray(2048, 3072));
    expect(seen[2]?.buffers[0]?.buffer).toBe(first.buffers[0]?.buffer);
    expect(seen[2]?.buffers[0]?.equals(stream.subarray(2048, 3072))).toBe(true);
    expect(second.buffers[0]?.equals(stream.subarray(1024, 2048))).toBe(true);
    expect(filler.inUse).toBe(2);
  });

  it("hands a released buffer to the next pull's filler, through their pool", () => {
    const pool = new BufferPool(4096);
    const first: VerifiedChunk[] = [];
    new ChunkFiller(layout, 0, (c) => first.push(c), pool).push(stream.subarray(0, 2048));
    for (const chunk of first) chunk.release?.();
    expect(pool.bytes).toBe(2048);
    const next: VerifiedChunk[] = [];
    new ChunkFiller(layout, 5, (c) => next.push(c), pool).push(stream.subarray(5 * 1024, 7 * 1024));
    expect(pool.bytes).toBe(0);
    const reused = new Set(first.map((c) => c.buffers[0]?.buffer));
    expect(next.map((c) => reused.has(c.buffers[0]?.buffer))).toEqual([true, true]);
    expect(Buffer.concat(next.flatMap((c) => c.buffers)).equals(stream.subarray(5 * 1024, 7 * 1024))).toBe(
      true,
    );
  });

  it("starts at a chunk when resuming", () => {
    const seen: number[] = [];
    new ChunkFiller(layout, 3, (c) => seen.push(c.index)).push(stream.subarray(3 * 1024));
    expect(seen).toEqual([3, 4, 5, 6, 7, 8, 9]);
  });

  /** What push threw, after the chunks it handed on. */
  function pushAll(filler: ChunkFiller, data: Buffer): unknown {
    try {
      filler.push(data);
      return undefined;
    } catch (err) {
      return err;
    }
  }

  it("refuses the chunk with a flipped byte, naming it, and hands on the chunks before it", () => {
    const bad = Buffer.from(stream);
    bad[5 * 1024 + 17] = (bad[5 * 1024 + 17] as number) ^ 1;
    for (const start of [0, 3]) {
      const seen: number[] = [];
      const failure = pushAll(
        new ChunkFiller(layout, start, (c) => seen.push(c.index)),
        bad.subarray(start * 1024),
      );
      expect(seen).toEqual([0, 1, 2, 3, 4].slice(start));
      expect(isGildError(failure, "GILD_STREAM_HASH_MISMATCH")).toBe(true);
      expect((failure as Error).message).toMatch(/^chunk 5 of 10 /);
    }
  });

  it("refuses bytes past the end", () => {
    let chunks = 0;
    const failure = pushAll(
      new ChunkFiller(layout, 0, () => chunks++),
      Buffer.concat([stream, Buffer.from([0])]),
    );
    expect(chunks).toBe(10);
    expect(isGildError(failure, "GILD_STREAM_SIZE_MISMATCH")).toBe(true);
    expect((failure as Error).message).toMatch(/past its 10000 bytes/);
  });
});

describe("chunkLayoutOf", () => {
  it("is null for a manifest without chunk digests, and refuses digests that do not cover the stream", () => {
    expect(chunkLayoutOf({ sizeBytes: 100 })).toBeNull();
    const d = new Uint8Array(32);
    expect(chunkLayoutOf({ sizeBytes: 100, chunkSize: 64, chunkSha256: [d, d] })?.chunkSize).toBe(64);
    for (const bad of [
      { sizeBytes: 100, chunkSize: 64, chunkSha256: [d] },
      { sizeBytes: 100, chunkSize: 0, chunkSha256: [d] },
      { sizeBytes: 100, chunkSize: 64, chunkSha256: [d, new Uint8Array(31)] },
    ]) {
      expect(() => chunkLayoutOf(bad)).toThrow(/chunk digests/);
    }
  });
});

describe("trimSpoolToVerified", () => {
  const dir = mkdtempSync(join(tmpdir(), "gild-spool-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const stream = randomBytes(10_000);
  const layout = layoutOf(stream, 1024);

  it.each([
    ["whole", stream, 10_000],
    ["cut mid-chunk", stream.subarray(0, 3 * 1024 + 100), 3 * 1024],
    ["cut at a chunk", stream.subarray(0, 4 * 1024), 4 * 1024],
    ["empty", Buffer.alloc(0), 0],
    [
      "damaged in chunk 2",
      Buffer.concat([stream.subarray(0, 2048), Buffer.from([0]), stream.subarray(2049, 6000)]),
      2048,
    ],
    ["longer than the stream", Buffer.concat([stream, Buffer.from("more")]), 10_000],
  ])("%s: keeps the whole good chunks before any damage", async (_name, content, kept) => {
    const file = join(dir, "a.part");
    writeFileSync(file, content);
    expect(await trimSpoolToVerified(file, layout)).toBe(kept);
    expect(readFileSync(file).equals(stream.subarray(0, kept))).toBe(true);
  });

  it("a missing spool holds nothing", async () => {
    expect(await trimSpoolToVerified(join(dir, "missing.part"), layout)).toBe(0);
  });
});
