import { createReadStream } from "node:fs";
import { type FileHandle, open, rm } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { type ExpectedStream, type ImageStore, type ReceiveResult, receive } from "@gild/btrfs";
import { GildError, isGildError, type Logger } from "@gild/core";
import { isRetryable, sinkFailure } from "./artifact-download.js";
import { type ArtifactRead, readArtifact } from "./artifact-reader.js";
import { ChunkFiller, type ChunkLayout, trimSpoolToVerified, type VerifiedChunk } from "./chunk-assembler.js";
import { ChunkFetcher, type ChunkFetchReport, type ChunkSourceSpec } from "./peer/chunk-fetcher.js";
import type { PeerHoldings } from "./peer/peer-holdings.js";
import type { ProgressReporter } from "./progress.js";

export interface ChunkedPullOptions {
  store: ImageStore;
  layout: ChunkLayout;
  artifactId: string;
  spool: string;
  expected: ExpectedStream;
  download: {
    controllerUrl: string;
    credential: string;
    caPem: string | null;
    maxDownloadRate: number;
  };
  maxAttempts: number;
  log: Logger;
  progress: ProgressReporter;
  signal?: AbortSignal;
  /**
   * Peer fan-out: this host serves the chunks it verified while it downloads (holdings), keeps the
   * spool in the peer cache after the receive, and fetches from the peers the controller named first.
   */
  peers?: {
    holdings: PeerHoldings;
    /** The controller's picks for this transfer, in order; may be empty (this host is fed first). */
    sources: ChunkSourceSpec[];
    /** The controller's artifact socket as a range source: the fetcher's last fallback. */
    controller: ChunkSourceSpec;
  };
}

export interface ChunkedPullResult {
  received: ReceiveResult;
  /** From the peers: who served a bad chunk, and how much came from peers. */
  peerReport: ChunkFetchReport | null;
  /** Bytes that crossed the wire, a cut chunk's dropped bytes included. */
  bytesTransferred: number;
  /** The offset the last download attempt started from. */
  resumedFrom: number;
}

// Verified chunks handed to the spool and the receive and not yet done with, beside the one being
// filled: at least two, whatever the chunk size, so the download never waits on one chunk's write.
const CHUNK_BYTES_IN_FLIGHT = 16 * 1024 * 1024;
// Verified chunks waiting for `btrfs receive` to read them: enough to keep it busy while the next
// chunk downloads.
const RECEIVE_BUFFER_CHUNKS = 2;
/** Runs of `btrfs receive` one pull may start (the first, and again after it was killed). */
const MAX_RECEIVE_STARTS = 4;

/** One run of `btrfs receive` and the stream that feeds it. */
class ReceiveRun {
  // Object mode: every buffer reaches receive's stdin as the same object it was written as, so the
  // moment receive is done with a reused buffer is known (held, below).
  readonly source = new PassThrough({ objectMode: true, highWaterMark: RECEIVE_BUFFER_CHUNKS });
  readonly result: Promise<ReceiveResult>;
  /** Bytes handed to it: verified chunks only, from the stream's start. */
  fed = 0;
  /** Reused buffers handed over and not yet written to receive's stdin, with what frees them. */
  private readonly held = new Map<Buffer, () => void>();

  constructor(store: ImageStore, expected: ExpectedStream) {
    // Only chunks that matched their signed digests are fed: no second, whole-stream hash.
    this.result = receive(store, this.source, {
      ...expected,
      chunkVerified: true,
      onWritten: (buffer) => this.written(buffer),
    });
    // Awaited by whoever ends or abandons the run; never an unhandled rejection meanwhile. Once it
    // ended nothing reads what it still held.
    this.result
      .catch(() => undefined)
      .finally(() => {
        for (const buffer of [...this.held.keys()]) this.written(buffer);
      });
  }

  private written(buffer: Buffer): void {
    const release = this.held.get(buffer);
    if (!release) return;
    this.held.delete(buffer);
    release();
  }

  /** True once receive stopped reading (it failed, or was killed). */
  get gone(): boolean {
    return this.source.destroyed;
  }

  /**
   * Hand verified bytes over; resolves when there is room for more, false if the receive is gone.
   * `release` runs once receive is done with the buffers (written, or the run ended).
   */
  async write(buffers: Buffer[], release?: () => void): Promise<boolean> {
    let room = true;
    for (const buffer of buffers) {
      if (this.source.destroyed) {
        release?.();
        return false;
      }
      room = this.source.write(buffer);
      this.fed += buffer.length;
    }
    // stdin writes complete in order: the last buffer written means all of them are.
    const last = buffers.at(-1);
    if (release && last) this.held.set(last, release);
    else release?.();
    if (!room && !this.source.destroyed) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.source.off("drain", done);
          this.source.off("close", done);
          resolve();
        };
        this.source.on("drain", done);
        this.source.on("close", done);
      });
    }
    return !this.source.destroyed;
  }

  /** Stop it (its staging directory is removed by receive) and wait until it is gone. */
  async abandon(): Promise<void> {
    this.source.destroy();
    await this.result.catch(() => undefined);
  }
}

/**
 * The spool and the receive behind it: every verified chunk is written to the spool and handed to
 * `btrfs receive`. The spool holds whole verified chunks only, in order, from the stream's start, so a
 * receive that died is replaced by one fed from the spool, and nothing is downloaded twice.
 */
class SpoolAndReceive {
  private run: ReceiveRun;
  private starts = 1;
  /** Set when receive itself refused or failed (not cancelled): the spooled bytes are no use then. */
  receiveFailed = false;

  private constructor(
    private readonly options: ChunkedPullOptions,
    private readonly file: FileHandle,
    /** Bytes of whole verified chunks in the spool. */
    public spooled: number,
  ) {
    this.run = new ReceiveRun(options.store, options.expected);
  }

  static async open(options: ChunkedPullOptions, spooled: number): Promise<SpoolAndReceive> {
    const file = await open(options.spool, spooled === 0 ? "w" : "r+", 0o600);
    const pipe = new SpoolAndReceive(options, file, spooled);
    try {
      if (!(await pipe.refeed())) await pipe.restart();
    } catch (err) {
      await pipe.close();
      throw err;
    }
    return pipe;
  }

  async append(chunk: VerifiedChunk): Promise<void> {
    // The spool write and the receive's feed run side by side: a chunk costs the slower of the two,
    // not their sum. A receive that is gone is replaced once the chunk is spooled, and its successor
    // is fed this chunk from the spool.
    // A reused buffer is free once it is spooled and receive is done with it.
    let users = 2;
    const done = () => {
      if (--users === 0) chunk.release?.();
    };
    const [, fed] = await Promise.all([
      this.writeSpool(chunk).finally(done),
      this.run.write(chunk.buffers, done),
    ]);
    if (!fed) await this.restart();
  }

  private async writeSpool(chunk: VerifiedChunk): Promise<void> {
    let position = chunk.offset;
    // writev may write less than asked (a signal, a quota): write the rest.
    let pending = chunk.buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.file.writev(pending, position);
      position += bytesWritten;
      pending = skipBytes(pending, bytesWritten);
    }
    this.spooled = chunk.offset + chunk.bytes;
  }

  /** Every byte is spooled: end the receive's stream and wait for its checks and promotion. */
  async finish(): Promise<ReceiveResult> {
    for (;;) {
      if (!this.run.gone) this.run.source.end();
      try {
        return await this.run.result;
      } catch (err) {
        if (!this.mayRestart(err)) {
          this.receiveFailed = !this.options.signal?.aborted;
          throw err;
        }
      }
      await this.restart();
    }
  }

  /** Bytes the current receive was given. */
  get fed(): number {
    return this.run.fed;
  }

  /** Stop the receive (its staging directory goes) and close the spool, which stays for a resume. */
  async close(): Promise<void> {
    await this.run.abandon();
    await this.file.close();
  }

  private mayRestart(err: unknown): boolean {
    return (
      isGildError(err, "GILD_TRANSFER_FAILED") &&
      !this.options.signal?.aborted &&
      this.starts < MAX_RECEIVE_STARTS
    );
  }

  /** Replace a receive that is gone with a new one fed from the spool; throws its error if it may not. */
  private async restart(): Promise<void> {
    for (;;) {
      const outcome = await this.run.result.then(
        () => undefined,
        (err: unknown) => err,
      );
      if (outcome === undefined) throw new Error("btrfs receive ended before its stream did");
      if (!this.mayRestart(outcome)) {
        this.receiveFailed = !this.options.signal?.aborted;
        throw outcome;
      }
      this.starts++;
      this.options.log.warn(
        { artifact: this.options.artifactId, spooled: this.spooled, err: (outcome as Error).message },
        "btrfs receive stopped; starting it again from the spool",
      );
      this.run = new ReceiveRun(this.options.store, this.options.expected);
      if (await this.refeed()) return;
    }
  }

  /** Feed the current receive the spooled chunks; false if it went away meanwhile. */
  private async refeed(): Promise<boolean> {
    if (this.spooled === 0) return !this.run.gone;
    const reader = createReadStream(this.options.spool, {
      start: 0,
      end: this.spooled - 1,
      highWaterMark: 1024 * 1024,
    });
    try {
      for await (const piece of reader) {
        if (!(await this.run.write([piece as Buffer]))) return false;
      }
    } finally {
      reader.destroy();
    }
    return true;
  }
}

/** The buffers after the first `bytes` of them. */
function skipBytes(buffers: Buffer[], bytes: number): Buffer[] {
  let rest = bytes;
  let i = 0;
  while (i < buffers.length && rest >= (buffers[i] as Buffer).length) {
    rest -= (buffers[i] as Buffer).length;
    i++;
  }
  const left = buffers.slice(i);
  if (rest > 0 && left.length > 0) left[0] = (left[0] as Buffer).subarray(rest);
  return left;
}

/**
 * One download attempt from the controller, from `offset`: the socket's bytes are copied into chunk
 * buffers, each chunk checked against its signed digest, and only a matched chunk goes on (`deliver`:
 * the spool and the receive), one at a time and in order. The socket pauses while CHUNK_BYTES_IN_FLIGHT
 * of chunks are not yet released, so memory is bounded whatever the artifact size, and the buffers are
 * used again: no garbage per byte. Whatever the end (a cut, a bad chunk), the chunks verified before it
 * are delivered before this returns or throws.
 */
async function downloadChunks(
  options: ChunkedPullOptions,
  offset: number,
  deliver: (chunk: VerifiedChunk) => Promise<void>,
  onBytes: (total: number) => void,
): Promise<void> {
  const { layout } = options;
  const inFlight = Math.max(2, Math.floor(CHUNK_BYTES_IN_FLIGHT / layout.chunkSize));
  let delivering: Promise<void> = Promise.resolve();
  let deliveryFailure: GildError | undefined;
  const filler = new ChunkFiller(layout, offset / layout.chunkSize, (chunk) => {
    const release = chunk.release;
    chunk.release = () => {
      release?.();
      if (filler.inUse < inFlight) read.resume();
    };
    if (filler.inUse >= inFlight) read.pause();
    delivering = delivering.then(async () => {
      if (deliveryFailure) return chunk.release?.();
      try {
        await deliver(chunk);
      } catch (err) {
        deliveryFailure = sinkFailure(err as NodeJS.ErrnoException);
        read.fail(deliveryFailure);
      }
    });
  });
  const read: ArtifactRead = readArtifact({
    ...options.download,
    artifactId: options.artifactId,
    offset,
    size: layout.sizeBytes,
    rateLimit: options.download.maxDownloadRate,
    onData: (piece) => filler.push(piece),
    onBytes,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const outcome = await read.done.then(
    () => undefined,
    (err: unknown) => err as GildError,
  );
  await delivering;
  if (deliveryFailure) throw deliveryFailure;
  if (outcome) throw outcome;
}

/**
 * A pipelined pull: `btrfs receive` runs from the start and is fed each chunk as soon as it arrived
 * whole and matched its signed sha256, while the next one downloads. Resumes at the first chunk the
 * spool lacks (after a cut, or an agent restart: the spool is checked again first).
 */
export async function pullChunked(options: ChunkedPullOptions): Promise<ChunkedPullResult> {
  const { layout, progress } = options;
  const size = layout.sizeBytes;
  const started = Date.now();
  const spooled = await trimSpoolToVerified(options.spool, layout);
  progress.update(spooled, size, "download");
  const pipe = await SpoolAndReceive.open(options, spooled);
  let transferred = 0;
  let resumedFrom = spooled;
  const peers = options.peers;
  const held = { artifactId: options.artifactId, sizeBytes: size, chunkSize: layout.chunkSize };
  // Every chunk in the spool is verified: other hosts may have them while this one still downloads.
  peers?.holdings.downloading(held, options.spool, spooled / layout.chunkSize);
  const spoolChunk = async (chunk: VerifiedChunk) => {
    await pipe.append(chunk);
    peers?.holdings.verified(options.artifactId, chunk.index + 1);
  };
  let peerReport: ChunkFetchReport | null = null;
  try {
    if (peers && peers.sources.length > 0 && pipe.spooled < size) {
      // Peers first, the controller as the fetcher's fallback; each chunk verified by the fetcher.
      const offset = pipe.spooled;
      const fetcher = new ChunkFetcher({
        layout: held,
        chunkSha256: layout.digests,
        firstChunk: offset / layout.chunkSize,
        peers: peers.sources,
        controller: peers.controller,
        // Hosts fetching from this one wait for it while its own sources keep sending.
        onProgress: () => peers.holdings.moving(options.artifactId),
        log: options.log,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      try {
        for await (const chunk of fetcher.chunks()) {
          const start = chunk.index * layout.chunkSize;
          await spoolChunk({
            index: chunk.index,
            offset: start,
            bytes: chunk.data.length,
            buffers: [chunk.data],
          });
          progress.update(pipe.spooled, size, "download");
        }
      } catch (err) {
        // A cut from the controller, the fallback: the loop below resumes at the first chunk not spooled.
        if (!isRetryable(err) || options.signal?.aborted) throw err;
        options.log.warn(
          { artifact: options.artifactId, spooled: pipe.spooled, err: (err as Error).message },
          "chunk fetch cut; resuming from the controller",
        );
      } finally {
        peerReport = fetcher.report();
        transferred += pipe.spooled - offset;
      }
    }
    for (let attempt = 1; pipe.spooled < size; attempt++) {
      if (options.signal?.aborted) {
        throw new GildError("GILD_TRANSFER_FAILED", "transfer cancelled", { cause: options.signal.reason });
      }
      const offset = pipe.spooled;
      resumedFrom = offset;
      let reached = offset;
      try {
        // What the socket handed over before a cut is still checked and kept, whole chunks of it.
        await downloadChunks(options, offset, spoolChunk, (n: number) => {
          reached = n;
          peers?.holdings.moving(options.artifactId);
          progress.update(n, size, "download");
        });
      } catch (err) {
        if (!isRetryable(err) || attempt >= options.maxAttempts || options.signal?.aborted) throw err;
        options.log.warn(
          {
            artifact: options.artifactId,
            offset,
            spooled: pipe.spooled,
            attempt,
            err: (err as Error).message,
          },
          "transfer cut; resuming at the first chunk not spooled",
        );
        await delay(Math.min(30_000, 250 * 2 ** attempt), undefined, {
          ...(options.signal ? { signal: options.signal } : {}),
        }).catch(() => undefined);
      } finally {
        transferred += reached - offset;
      }
    }
    progress.update(size, size, "receive");
    const downloaded = Date.now();
    const received = await pipe.finish();
    await pipe.close();
    // Promoted: peers may fetch the whole artifact from the peer cache for a while (keep() removes
    // it when there is no room); without peering the spool is done with.
    if (peers) await peers.holdings.keep(options.artifactId, options.spool);
    else await rm(options.spool, { force: true });
    // How long receive ran on after the last byte arrived: the part of it pipelining did not hide.
    options.log.info(
      {
        artifact: options.artifactId,
        bytes: size,
        transferred,
        resumedFrom,
        ms: Date.now() - started,
        receiveTailMs: Date.now() - downloaded,
      },
      "pull received",
    );
    return { received, bytesTransferred: transferred, resumedFrom, peerReport };
  } catch (err) {
    options.log.warn(
      {
        artifact: options.artifactId,
        spooled: pipe.spooled,
        receiveFed: pipe.fed,
        err: (err as Error).message,
      },
      "pull failed; its receive stopped",
    );
    await pipe.close();
    peers?.holdings.abandoned(options.artifactId);
    // A full disk: the spool is what filled it. A refused stream: its bytes are no base to resume
    // from. Otherwise (a cut, a chunk that failed its digest) the verified chunks stay for a resume.
    if (isGildError(err, "GILD_NO_SPACE") || pipe.receiveFailed) await rm(options.spool, { force: true });
    throw err;
  }
}
