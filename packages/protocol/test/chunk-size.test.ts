import {
  chunkCount,
  chunkSizeFor,
  DEFAULT_CHUNK_BYTES,
  decodeManifest,
  encodeManifest,
  MAX_CHUNKS,
  MAX_FRAME_BYTES,
  MAX_MANIFEST_BYTES,
} from "@gild/protocol";
import { describe, expect, it } from "vitest";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

describe("chunkSizeFor", () => {
  it.each([
    [0, 4 * MIB, 0],
    [1, 4 * MIB, 1],
    [4 * MIB, 4 * MIB, 1],
    [4 * MIB + 1, 4 * MIB, 2],
    [1 * GIB, 4 * MIB, 256],
    [64 * GIB, 4 * MIB, MAX_CHUNKS],
    [64 * GIB + 1, 8 * MIB, 8193],
    [128 * GIB, 8 * MIB, MAX_CHUNKS],
    [1024 * GIB, 64 * MIB, MAX_CHUNKS],
  ])("a stream of %d bytes: chunks of %d, %d of them", (size, chunk, count) => {
    expect(chunkSizeFor(size)).toBe(chunk);
    expect(chunkCount(size, chunkSizeFor(size))).toBe(count);
  });

  it("is a power-of-two multiple of the default and never makes more than MAX_CHUNKS", () => {
    for (let size = 1; size < 2 ** 50; size = Math.ceil(size * 1.37) + 12345) {
      const chunk = chunkSizeFor(size);
      expect(Number.isInteger(Math.log2(chunk / DEFAULT_CHUNK_BYTES))).toBe(true);
      expect(chunkCount(size, chunk)).toBeLessThanOrEqual(MAX_CHUNKS);
      // The smallest such size: half of it would make too many chunks.
      if (chunk > DEFAULT_CHUNK_BYTES) expect(chunkCount(size, chunk / 2)).toBeGreaterThan(MAX_CHUNKS);
    }
  });

  it("keeps the largest manifest well under the 1 MiB frame", () => {
    const manifest = encodeManifest({
      artifactId: "a".repeat(32),
      line: "l".repeat(64),
      version: 2 ** 31 - 1,
      parentVersion: 2 ** 31 - 2,
      parentUuid: "u".repeat(36),
      uuid: "v".repeat(36),
      sizeBytes: 2 ** 50,
      sha256: "0".repeat(64),
      streamVersion: 2,
      createdAtMs: Date.now(),
      chunkSize: chunkSizeFor(2 ** 50),
      chunkSha256: Array.from({ length: MAX_CHUNKS }, () => new Uint8Array(32).fill(0xff)),
    });
    expect(manifest.length).toBeLessThan(MAX_FRAME_BYTES * 0.6);
    // ... and an agent decodes it (the limit once was 64 KiB: streams over ~7.4 GiB were refused).
    expect(manifest.length).toBeLessThanOrEqual(MAX_MANIFEST_BYTES);
    expect(decodeManifest(manifest).chunkSha256).toHaveLength(MAX_CHUNKS);
  });
});
