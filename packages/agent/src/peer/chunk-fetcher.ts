import { createHash } from "node:crypto";
import { GildError, type Logger, toGildError } from "@gild/core";
import type { BadPeer } from "@gild/protocol";
import { chunkLength } from "../chunk-assembler.js";
import type { RangeReader } from "./chunk-sources.js";
import { type HeldLayout, heldChunks } from "./peer-holdings.js";

/** One place chunks can come from: a peer (by host id) or the controller. */
export interface ChunkSourceSpec {
  /** A peer's host id, or "controller". */
  id: string;
  read: RangeReader;
}

export interface ChunkFetchOptions {
  layout: HeldLayout;
  /** sha256 (32 bytes) of each chunk, from the signed manifest. */
  chunkSha256: readonly Uint8Array[];
  /** The first chunk not yet held (chunks before it are spooled and verified already). */
  firstChunk: number;
  /** Peers in the controller's order of preference. */
  peers: readonly ChunkSourceSpec[];
  /** The last fallback, used only while no peer works. */
  controller: ChunkSourceSpec;
  /** Peers fetched from at once (each its own range). Default 2. */
  parallel?: number;
  /** A source that sends nothing this long is given up for this transfer. Default 10 s. */
  stallMs?: number;
  /** Most bytes held out of order, waiting for an earlier chunk. Default 32 MiB. */
  windowBytes?: number;
  /** Bytes one peer request asks for. Default 8 MiB. */
  rangeBytes?: number;
  /** Called whenever a source sends bytes or word that bytes are coming (a peer's heartbeat). */
  onProgress?: () => void;
  signal?: AbortSignal;
  log: Logger;
}

export interface FetchedChunk {
  index: number;
  data: Buffer;
  /** Who sent it: a peer's host id, or "controller". */
  source: string;
}

export interface ChunkFetchReport {
  badPeers: BadPeer[];
  /** Peers given up for this transfer without blame: gone, refused, or stalled. */
  unavailablePeers: BadPeer[];
  bytesFromPeers: number;
  bytesFromController: number;
}

type ChunkState = "free" | "claimed" | "ready";

/**
 * Fetch an artifact's chunks from several sources at once and hand them out strictly in order, each
 * only after its sha256 matched the signed manifest (docs/architecture.md, Peer fan-out). Peers work
 * side by side on ranges of chunks; a peer that serves a bad chunk is bad for the rest of the transfer
 * and reported; one that is slow (no byte or heartbeat within stallMs), gone or refusing is given up
 * without blame; one whose answer ends short after a chunk or more (it has no more yet) is asked again;
 * the controller is asked only while no peer is left working. Memory stays within windowBytes plus the
 * ranges in flight, and nothing is fetched beyond the window while the consumer is behind.
 */
export class ChunkFetcher {
  private readonly count: number;
  private readonly state: ChunkState[];
  private readonly ready = new Map<number, FetchedChunk>();
  private next: number;
  private readonly window: number;
  private readonly rangeChunks: number;
  private readonly stallMs: number;
  private readonly bad = new Map<string, string>();
  private readonly unavailable = new Map<string, string>();
  private readonly working = new Set<string>();
  private waiting: Array<() => void> = [];
  private bytesFromPeers = 0;
  private bytesFromController = 0;
  private controllerFailure: GildError | undefined;
  private readonly stop = new AbortController();

  constructor(private readonly options: ChunkFetchOptions) {
    const { layout } = options;
    if (layout.chunkSize <= 0) throw new Error("a chunk fetch needs a manifest with chunks");
    this.count = heldChunks(layout);
    if (options.chunkSha256.length !== this.count)
      throw new GildError(
        "GILD_SIGNATURE_INVALID",
        `the manifest lists ${options.chunkSha256.length} chunk digests for ${this.count} chunks`,
      );
    this.next = options.firstChunk;
    this.state = Array.from({ length: this.count }, (_, i) => (i < options.firstChunk ? "ready" : "free"));
    this.window = Math.max(1, Math.floor((options.windowBytes ?? 32 * 1024 * 1024) / layout.chunkSize));
    this.rangeChunks = Math.max(1, Math.floor((options.rangeBytes ?? 8 * 1024 * 1024) / layout.chunkSize));
    this.stallMs = options.stallMs ?? 10_000;
  }

  /** What the transfer found out about its sources so far. */
  report(): ChunkFetchReport {
    const list = (m: Map<string, string>) => [...m].map(([hostId, reason]) => ({ hostId, reason }));
    return {
      badPeers: list(this.bad),
      unavailablePeers: list(this.unavailable),
      bytesFromPeers: this.bytesFromPeers,
      bytesFromController: this.bytesFromController,
    };
  }

  /** The verified chunks from firstChunk on, in order. Stops every source when the loop ends. */
  async *chunks(): AsyncGenerator<FetchedChunk> {
    const external = this.options.signal;
    const onAbort = () => this.stop.abort(external?.reason);
    external?.addEventListener("abort", onAbort, { once: true });
    try {
      const peers = this.options.peers.slice();
      const startPeers = () => {
        while (this.working.size < (this.options.parallel ?? 2) && peers.length > 0) {
          const peer = peers.shift() as ChunkSourceSpec;
          if (!this.bad.has(peer.id) && !this.unavailable.has(peer.id)) this.run(peer);
        }
      };
      startPeers();
      while (this.next < this.count) {
        if (this.stop.signal.aborted)
          throw new GildError("GILD_TRANSFER_FAILED", "transfer cancelled", {
            cause: this.stop.signal.reason,
          });
        const chunk = this.ready.get(this.next);
        if (chunk) {
          this.ready.delete(this.next);
          this.next++;
          this.notify();
          yield chunk;
          continue;
        }
        startPeers();
        if (this.working.size === 0) {
          if (this.controllerFailure) throw this.controllerFailure;
          this.run(this.options.controller);
        }
        await new Promise<void>((resolve) => this.waiting.push(resolve));
      }
    } finally {
      external?.removeEventListener("abort", onAbort);
      this.stop.abort();
      this.notify();
    }
  }

  private notify(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w();
  }

  /** The next free chunks within the window, at most `max` in a row; undefined when none. */
  private claim(max: number): { first: number; last: number } | undefined {
    const limit = Math.min(this.count, this.next + this.window);
    let first = this.next;
    while (first < limit && this.state[first] !== "free") first++;
    if (first >= limit) return undefined;
    let last = first;
    while (last + 1 < limit && last + 1 - first < max && this.state[last + 1] === "free") last++;
    for (let i = first; i <= last; i++) this.state[i] = "claimed";
    return { first, last };
  }

  private release(from: number, last: number): void {
    for (let i = from; i <= last; i++) if (this.state[i] === "claimed") this.state[i] = "free";
  }

  /** One source's loop: claim a range, read it, verify each chunk, until nothing is left or it fails. */
  private run(source: ChunkSourceSpec): void {
    const isController = source.id === "controller";
    this.working.add(source.id);
    const work = async () => {
      for (;;) {
        if (this.stop.signal.aborted) return;
        // The controller takes all it may: it is the one source left, and each request costs a socket.
        const range = this.claim(isController ? this.window : this.rangeChunks);
        if (!range) {
          // Nothing free: done when every chunk left is verified; else another source's range may
          // come free (it stalls or fails), or the window moves on.
          if (this.state.slice(this.next).every((s) => s === "ready")) return;
          await new Promise<void>((resolve) => this.waiting.push(resolve));
          continue;
        }
        await this.readRange(source, range);
      }
    };
    work()
      .catch((err: unknown) => {
        const gild = toGildError(err);
        if (isController) this.controllerFailure = gild;
        else if (gild.code === "GILD_PEER_CHUNK_CORRUPT") this.bad.set(source.id, gild.message);
        else this.unavailable.set(source.id, gild.message);
        this.options.log.warn(
          { source: source.id, code: gild.code, err: gild.message },
          "chunk source given up",
        );
      })
      .finally(() => {
        this.working.delete(source.id);
        this.notify();
      });
  }

  private async readRange(source: ChunkSourceSpec, range: { first: number; last: number }): Promise<void> {
    const { layout } = this.options;
    const request = new AbortController();
    const signal = AbortSignal.any([request.signal, this.stop.signal]);
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        request.abort();
      }, this.stallMs);
    };
    let index = range.first;
    let pieces: Buffer[] = [];
    let held = 0;
    try {
      arm();
      const start = range.first * layout.chunkSize;
      const end = range.last * layout.chunkSize + chunkLength(layout, range.last);
      for await (const data of source.read({ start, end }, signal)) {
        // An empty piece is a heartbeat: the peer waits for its own download, which moves.
        arm();
        this.options.onProgress?.();
        let rest = data;
        while (rest.length > 0 && index <= range.last) {
          const want = chunkLength(layout, index) - held;
          const piece = rest.subarray(0, want);
          rest = rest.subarray(piece.length);
          pieces.push(piece);
          held += piece.length;
          if (held < chunkLength(layout, index)) break;
          const chunk = Buffer.concat(pieces);
          pieces = [];
          held = 0;
          this.accept(source, index, chunk);
          index++;
        }
        if (rest.length > 0)
          throw new GildError(
            "GILD_PEER_CHUNK_CORRUPT",
            `${source.id} sent more bytes than chunks ${range.first}-${range.last}`,
          );
      }
      // A peer still downloading ends its answer where its verified chunks end: it is asked again.
      const short = index <= range.last && (index === range.first || source.id === "controller");
      if (short && !this.stop.signal.aborted)
        throw new GildError(
          "GILD_TRANSFER_FAILED",
          `${source.id} ended its answer at chunk ${index} of ${range.first}-${range.last}`,
        );
    } catch (err) {
      if (stalled)
        throw new GildError("GILD_TRANSFER_FAILED", `${source.id} sent nothing for ${this.stallMs / 1000} s`);
      throw err;
    } finally {
      clearTimeout(timer);
      this.release(index, range.last);
    }
  }

  /** Verify one chunk and queue it for the consumer; a mismatch is the source's fault. */
  private accept(source: ChunkSourceSpec, index: number, chunk: Buffer): void {
    const expected = this.options.chunkSha256[index] as Uint8Array;
    const actual = createHash("sha256").update(chunk).digest();
    if (!actual.equals(expected)) {
      if (source.id === "controller")
        throw new GildError(
          "GILD_STREAM_HASH_MISMATCH",
          `chunk ${index} from the controller differs from the signed manifest`,
          { hint: "the controller checks its artifact file when a host reports this; push again" },
        );
      throw new GildError(
        "GILD_PEER_CHUNK_CORRUPT",
        `chunk ${index} from ${source.id} differs from the signed manifest`,
      );
    }
    this.state[index] = "ready";
    this.ready.set(index, { index, data: chunk, source: source.id });
    if (source.id === "controller") this.bytesFromController += chunk.length;
    else this.bytesFromPeers += chunk.length;
    this.notify();
  }
}
