import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat, truncate } from "node:fs/promises";
import { GildError } from "@gild/core";
import { type ArtifactManifest, BufferPool, chunkCount } from "@gild/protocol";

/** How a signed manifest cuts its stream: chunkSize bytes each (the last shorter), one sha256 each. */
export interface ChunkLayout {
  sizeBytes: number;
  chunkSize: number;
  digests: readonly Uint8Array[];
}

/** A whole chunk whose sha256 matched the manifest's: the pieces it arrived in, in order. */
export interface VerifiedChunk {
  index: number;
  /** Its first byte's offset in the stream. */
  offset: number;
  bytes: number;
  buffers: Buffer[];
  /**
   * For a chunk in a buffer that is used again (ChunkFiller): call once nothing reads its buffers any
   * more (spooled, and written to receive or dropped by it).
   */
  release?: () => void;
}

/**
 * The manifest's chunk layout; null for a manifest of a controller before chunked transfers (no
 * digests). A signed manifest whose digests do not cover its stream is refused.
 */
export function chunkLayoutOf(manifest: ArtifactManifest): ChunkLayout | null {
  const chunkSize = manifest.chunkSize ?? 0;
  const digests = manifest.chunkSha256 ?? [];
  const sizeBytes = manifest.sizeBytes ?? 0;
  if (chunkSize === 0 && digests.length === 0) return null;
  if (
    chunkSize === 0 ||
    digests.length !== chunkCount(sizeBytes, chunkSize) ||
    digests.some((d) => d.length !== 32)
  ) {
    throw new GildError(
      "GILD_SIGNATURE_INVALID",
      `the signed manifest's ${digests.length} chunk digests do not cover its ${sizeBytes} bytes in chunks of ${chunkSize}`,
    );
  }
  return { sizeBytes, chunkSize, digests };
}

/** Length of chunk `index`. */
export function chunkLength(layout: Pick<ChunkLayout, "sizeBytes" | "chunkSize">, index: number): number {
  return Math.min(layout.chunkSize, layout.sizeBytes - index * layout.chunkSize);
}

/**
 * Chunk buffers released by one pull and taken by the next (BufferPool: a fresh 4 MiB costs about
 * 15 ms of page faults). Room for what one pull holds at once with 4 MiB chunks: the chunks in flight
 * (chunked-pull.ts, 16 MiB) and the one being filled, and one more.
 */
export const chunkBuffers = new BufferPool(24 * 1024 * 1024);

/**
 * Cuts a stream, arriving in pieces of any size, into chunks and checks each against its signed
 * sha256. Pieces are copied at once into chunk-sized buffers (from `pool`) that are used again once
 * released: a piece may be a view into a read buffer that the next read overwrites
 * (artifact-reader.ts), and a pull makes no garbage whatever its size. A chunk is handed on only once
 * whole and matched; a mismatch throws, after the chunks completed before it were handed on.
 */
export class ChunkFiller {
  private index: number;
  private hash: Hash = createHash("sha256");
  private current: Buffer | null = null;
  private filled = 0;
  /** Chunks handed on and not yet released: what the caller weighs to pause its source. */
  inUse = 0;

  constructor(
    private readonly layout: ChunkLayout,
    startIndex: number,
    private readonly onChunk: (chunk: VerifiedChunk) => void,
    private readonly pool: BufferPool = chunkBuffers,
  ) {
    this.index = startIndex;
  }

  /** Bytes of the chunk under way (dropped when a transfer is cut). */
  get partialBytes(): number {
    return this.filled;
  }

  push(data: Buffer): void {
    for (let at = 0; at < data.length; ) {
      if (this.index >= this.layout.digests.length) {
        throw new GildError(
          "GILD_STREAM_SIZE_MISMATCH",
          `the stream goes on past its ${this.layout.sizeBytes} bytes`,
        );
      }
      const length = chunkLength(this.layout, this.index);
      if (!this.current) this.current = this.pool.take(this.layout.chunkSize);
      const buffer = this.current;
      const take = Math.min(length - this.filled, data.length - at);
      data.copy(buffer, this.filled, at, at + take);
      // What is checked is what is handed on: the copy, not the piece it came from.
      this.hash.update(buffer.subarray(this.filled, this.filled + take));
      this.filled += take;
      at += take;
      if (this.filled < length) continue;
      const digest = this.hash.digest();
      if (!digest.equals(this.layout.digests[this.index] as Uint8Array)) {
        throw chunkMismatch(this.layout, this.index, digest);
      }
      this.current = null;
      this.inUse++;
      let released = false;
      const chunk: VerifiedChunk = {
        index: this.index,
        offset: this.index * this.layout.chunkSize,
        bytes: length,
        buffers: [buffer.subarray(0, length)],
        release: () => {
          if (released) return;
          released = true;
          this.inUse--;
          this.pool.give(buffer);
        },
      };
      this.index++;
      this.hash = createHash("sha256");
      this.filled = 0;
      this.onChunk(chunk);
    }
  }
}

function chunkMismatch(layout: ChunkLayout, index: number, digest: Buffer): GildError {
  const start = index * layout.chunkSize;
  const end = start + chunkLength(layout, index);
  return new GildError(
    "GILD_STREAM_HASH_MISMATCH",
    `chunk ${index} of ${layout.digests.length} (bytes ${start}-${end - 1}) has sha256 ${digest.toString("hex")}, not the signed ${Buffer.from(layout.digests[index] as Uint8Array).toString("hex")}`,
    {
      hint: "nothing of it or after it was applied; the controller checks its artifact file when a host reports this; push again",
    },
  );
}

/**
 * Check a spool file against the manifest chunk by chunk and cut it after its last good chunk (a
 * partial chunk, or one written half when the agent died, goes). Returns the bytes kept.
 */
export async function trimSpoolToVerified(path: string, layout: ChunkLayout): Promise<number> {
  const size = await stat(path).then(
    (s) => s.size,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return 0;
      throw err;
    },
  );
  if (size === 0) return 0;
  let good = 0;
  const filler = new ChunkFiller(layout, 0, (chunk) => {
    good = chunk.offset + chunk.bytes;
    chunk.release?.();
  });
  try {
    for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      filler.push(piece as Buffer);
    }
  } catch (err) {
    // A chunk that does not match, or bytes past the stream: the spool ends before them.
    if (!(err instanceof GildError)) throw err;
  }
  if (good < size) await truncate(path, good);
  return good;
}
