import { createHash } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { GildError, type ImageVersionInfo, type LineKind, spawnFailure, toGildError } from "@gild/core";
import { ExecaError, execa } from "execa";
import { classifyBtrfsStderr, toolError } from "./exec.js";
import type { ImageStore } from "./image-catalog.js";
import { LaunchedToolError, launchedResult } from "./launcher.js";
import { type Pool, ROOTFS_NAME } from "./pool.js";
import { isSubvolume, showSubvolume } from "./subvolume.js";

/** The one name every stream gives its subvolume (docs/architecture.md, The wire). */

export interface SendOptions {
  /** Version of the same line to send incrementally against; full stream when absent. */
  parent?: number;
  /** Stream protocol 2 with compressed extents sent as they are (needs detectStreamCapabilities). */
  compressedData?: boolean;
  cancelSignal?: AbortSignal;
}

/**
 * `btrfs send` of an image version as a Node Readable. The stream errors with a GildError when
 * btrfs fails, so a consumer never mistakes a cut stream for a whole one.
 */
export function send(store: ImageStore, line: string, version: number, options: SendOptions = {}): Readable {
  const args = ["send", "-q"];
  if (options.compressedData) args.push("--proto", "2", "--compressed-data");
  if (options.parent !== undefined) args.push("-p", store.pool.rootfsPath(line, options.parent));
  args.push(store.pool.rootfsPath(line, version));
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  // The pool's launcher (launcher.ts: a daemon keeps its pages out of fork's way), or this process.
  const launcher = store.pool.launcher;
  let stdout: Readable;
  let done: Promise<unknown>;
  let stop: () => void;
  if (launcher) {
    const tool = launcher.start("btrfs", args, { stdin: false, stdout: true });
    stdout = tool.stdout as Readable;
    done = launchedResult("btrfs", tool, { signal: options.cancelSignal, forceKillAfterMs: 2_000 });
    let exited = false;
    void tool.exited.then(() => {
      exited = true;
    });
    stop = () => {
      if (!exited) tool.kill("SIGTERM");
      stdout.destroy();
    };
  } else {
    const subprocess = execa("btrfs", args, {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      buffer: { stdout: false, stderr: true },
      cancelSignal: options.cancelSignal,
      forceKillAfterDelay: 2_000,
    });
    stdout = subprocess.stdout;
    done = subprocess;
    stop = () => {
      if (subprocess.exitCode === null) subprocess.kill();
    };
  }
  stdout.pipe(out, { end: false });
  // A socket from the launcher that breaks while btrfs runs: the stream is cut, never ended whole.
  stdout.once("error", (err) => out.destroy(toolError("btrfs", args, err)));
  // A consumer that stops reading early (destroy) must stop btrfs too.
  out.on("close", stop);
  done.then(
    () => {
      if (stdout.readableEnded) out.end();
      else stdout.once("end", () => out.end());
    },
    (err: unknown) => out.destroy(toolError("btrfs", args, err, { cancelSignal: options.cancelSignal })),
  );
  return out;
}

/** What a receive must find, or it refuses the stream. */
export interface ExpectedStream {
  line: string;
  version: number;
  /** Lowercase hex sha256 of the whole stream. */
  sha256?: string;
  sizeBytes?: number;
  /**
   * uuid of the sender's parent subvolume for an incremental stream (the received_uuid the local parent
   * carries); null for a full stream. Undefined: accept either, but still check the result is consistent.
   */
  parentUuid?: string | null;
  /** uuid of the sender's subvolume: the received_uuid the new copy must carry. */
  uuid?: string;
  /** Recorded in meta.json of the new version. */
  createdBy?: string;
  /** Size of the image, as the sender knows it, recorded in meta.json. */
  imageSizeBytes?: number | null;
  /** Parent version number, as the sender knows it, recorded in meta.json. */
  parentVersion?: number | null;
  /** What the sender's line holds, recorded in meta.json; default "os". */
  kind?: LineKind;
  /**
   * The caller checked every byte against signed per-chunk digests before it fed it (a chunked pull):
   * the whole-stream sha256 is not computed a second time. Size and the image checks still run.
   */
  chunkVerified?: boolean;
  /**
   * Called with each chunk of a Readable source once receive holds it no more: written to its stdin,
   * or dropped (receive ended first). A caller that uses its buffers again waits for this.
   */
  onWritten?: (chunk: Buffer) => void;
  onProgress?: (bytesDone: number) => void;
  cancelSignal?: AbortSignal;
}

/**
 * A stream already whole in a file, with the sha256 the caller computed while it arrived: `btrfs
 * receive -f` reads it directly (no copy through Node), and nothing is received that was not hashed.
 */
export interface StreamFile {
  file: string;
  sha256: string;
}

export interface ReceiveResult {
  image: ImageVersionInfo;
  bytes: number;
  sha256: string;
}

/**
 * Receive a send stream into images/<line>/<version>: `btrfs receive -C -e -E 1` into a fresh
 * directory in .staging, hashing the stream as it flows; then check read-only, received_uuid,
 * parent_uuid, sha256 and size, and only then rename the directory into images/. Any failure leaves
 * nothing under images/ and nothing in .staging, and throws a coded error.
 */
export async function receive(
  store: ImageStore,
  source: Readable | StreamFile,
  expected: ExpectedStream,
): Promise<ReceiveResult> {
  const pool = store.pool;
  if (await store.exists(expected.line, expected.version)) {
    discard(source);
    throw new GildError(
      "GILD_IMAGE_EXISTS",
      `image ${expected.line}@${expected.version} is already on this pool`,
    );
  }
  let localParent: ImageVersionInfo | undefined;
  if (expected.parentUuid) {
    localParent = await store.findByUuid(expected.parentUuid);
    if (!localParent) {
      discard(source);
      throw new GildError(
        "GILD_PARENT_MISSING",
        `the parent of this incremental stream (uuid ${expected.parentUuid}) is not on this pool`,
        { hint: "send a full stream, or first the version it is based on" },
      );
    }
  }

  const staging = await pool.newStagingDir(`recv-${expected.line}-${expected.version}`);
  try {
    const { bytes, sha256 } = await runReceive(pool, staging, source, expected);
    return await verifyAndPromote(store, staging, expected, localParent, bytes, sha256);
  } catch (err) {
    await pool.removeTree(staging);
    throw err;
  }
}

function discard(source: Readable | StreamFile): void {
  if ("destroy" in source) source.destroy();
}

async function runReceive(
  pool: Pool,
  staging: string,
  source: Readable | StreamFile,
  expected: ExpectedStream,
): Promise<{ bytes: number; sha256: string }> {
  if (!("file" in source)) return runReceiveStream(pool, staging, source, expected);
  const bytes = (await stat(source.file)).size;
  const fromFile = startReceive(pool, [...receiveArgs(staging), "-f", source.file], false, expected);
  const [exited] = await Promise.allSettled([fromFile.done]);
  if (exited.status === "rejected") throw receiveFailure(exited.reason, undefined, bytes, expected);
  expected.onProgress?.(bytes);
  return { bytes, sha256: source.sha256 };
}

/** A running `btrfs receive`: its stdin (when fed), and its end (rejects with execa's or the launcher's error). */
interface ReceiveProcess {
  stdin: Writable | null;
  done: Promise<unknown>;
}

/**
 * Start `btrfs receive`, bound to its starter (setpriv), from this process or from the pool's
 * launcher; a cancel sends SIGTERM, and SIGKILL 2 s later, either way.
 */
function startReceive(pool: Pool, args: string[], stdin: boolean, expected: ExpectedStream): ReceiveProcess {
  // The pool's launcher (launcher.ts: the agent keeps its pages out of fork's way), or this process.
  const launcher = pool.launcher;
  if (!launcher) {
    const subprocess = execa(...boundToCaller("btrfs", args), {
      stdin: stdin ? "pipe" : "ignore",
      stdout: "ignore",
      stderr: "pipe",
      buffer: { stderr: true },
      cancelSignal: expected.cancelSignal,
      forceKillAfterDelay: 2_000,
      reject: true,
    });
    return { stdin: stdin ? subprocess.stdin : null, done: subprocess };
  }
  const [file, bound] = boundToCaller("btrfs", args);
  const tool = launcher.start(file, bound, { stdin });
  const done = launchedResult(file, tool, { signal: expected.cancelSignal, forceKillAfterMs: 2_000 });
  return { stdin: tool.stdin, done };
}

/**
 * Run a program that must not outlive its caller: setpriv gives it SIGKILL as its parent-death
 * signal. A receive left running by an agent killed with -9 would go on writing into a staging
 * directory that the next agent sweeps.
 */
function boundToCaller(file: string, args: readonly string[]): [string, string[]] {
  return ["setpriv", ["--pdeathsig", "KILL", "--", file, ...args]];
}

/** setpriv's own report that the program it was to run is not installed (exit 127). */
function boundToolMissing(file: string, err: unknown): GildError | undefined {
  if (!(err instanceof ExecaError || err instanceof LaunchedToolError) || err.exitCode !== 127)
    return undefined;
  if (!String(err.stderr ?? "").includes(`failed to execute ${file}`)) return undefined;
  return spawnFailure(file, { code: "ENOENT" });
}

// -C: chroot into the target, so a hostile stream's "../" paths cannot leave it (measured: without it
// they do). -e: stop at the end marker. -E 1: the first error is fatal.
function receiveArgs(staging: string): string[] {
  return ["receive", "-q", "-C", "-e", "-E", "1", staging];
}

async function runReceiveStream(
  pool: Pool,
  staging: string,
  source: Readable,
  expected: ExpectedStream,
): Promise<{ bytes: number; sha256: string }> {
  const receiver = startReceive(pool, receiveArgs(staging), true, expected);
  // A chunk-verified source was hashed chunk by chunk already: a second hash of every byte is CPU on
  // the agent's one thread that the download needs.
  const hash = expected.chunkVerified ? null : createHash("sha256");
  let bytes = 0;
  const feed = feedReceive(
    source,
    receiver.stdin as Writable,
    (chunk) => {
      hash?.update(chunk);
      bytes += chunk.length;
      expected.onProgress?.(bytes);
    },
    expected.onWritten,
  );
  // A receive that fails stops the stream; one that succeeds lets the rest be hashed (see feedReceive).
  receiver.done.catch(() => source.destroy());
  const [fed, exited] = await Promise.allSettled([feed, receiver.done]);
  if (exited.status === "rejected") {
    const sourceError =
      fed.status === "rejected" && !isPipeClosed(fed.reason) ? toGildError(fed.reason) : undefined;
    throw receiveFailure(exited.reason, sourceError, bytes, expected);
  }
  if (fed.status === "rejected") {
    // receive finished at the end marker, but the source broke off before its end.
    throw new GildError("GILD_STREAM_CORRUPT", `the stream did not end cleanly after ${bytes} bytes`, {
      cause: fed.reason,
    });
  }
  return { bytes, sha256: hash ? hash.digest("hex") : (expected.sha256 ?? "").toLowerCase() };
}

/** The coded error for a failed `btrfs receive`: no space, no parent, a broken source, or a bad stream. */
function receiveFailure(
  err: unknown,
  sourceError: Error | undefined,
  bytes: number,
  expected: ExpectedStream,
): GildError {
  const missing = spawnFailure("setpriv", err) ?? boundToolMissing("btrfs", err);
  if (missing) return missing;
  if (expected.cancelSignal?.aborted) {
    return new GildError(
      "GILD_TRANSFER_FAILED",
      `receive of ${expected.line}@${expected.version} was cancelled`,
      {
        cause: expected.cancelSignal.reason,
      },
    );
  }
  if (err instanceof LaunchedToolError && err.code !== undefined) {
    // It did not run to its end for a reason of the launcher's (its helper died): not the stream's.
    return new GildError(
      "GILD_TRANSFER_FAILED",
      `btrfs receive did not run to its end after ${bytes} bytes: ${err.message}`,
      { hint: "the stream can be received again from its start", cause: err },
    );
  }
  if ((err instanceof ExecaError || err instanceof LaunchedToolError) && err.signal !== undefined) {
    // Killed from outside (an operator, the OOM killer): the stream is not at fault, and a caller
    // that still has it may start another receive (docs/architecture.md, Artifact sockets).
    return new GildError(
      "GILD_TRANSFER_FAILED",
      `btrfs receive was killed (${err.signal}) after ${bytes} bytes`,
      { hint: "the stream can be received again from its start", cause: err },
    );
  }
  const stderr =
    err instanceof ExecaError || err instanceof LaunchedToolError ? String(err.stderr ?? "") : "";
  const classified = classifyBtrfsStderr(stderr);
  if (classified === "GILD_NO_SPACE" || classified === "GILD_PARENT_MISSING") {
    return new GildError(classified, `btrfs receive failed: ${lastLines(stderr)}`, { cause: err });
  }
  if (sourceError) {
    return new GildError(
      "GILD_STREAM_CORRUPT",
      `the stream broke off after ${bytes} bytes: ${sourceError.message}`,
      {
        cause: sourceError,
      },
    );
  }
  return new GildError(
    "GILD_STREAM_CORRUPT",
    `btrfs receive refused the stream after ${bytes} bytes: ${lastLines(stderr)}`,
    {
      cause: err,
    },
  );
}

/**
 * Copy the source into receive's stdin with backpressure, calling `seen` for every chunk. With -e,
 * receive exits at the end marker and closes its stdin, maybe before the last write is flushed: the
 * rest of the source is then still read (and hashed), not written, so the sha256 and size checks see
 * the whole stream. A source that fails ends stdin, so receive sees the stream break off.
 */
function feedReceive(
  source: Readable,
  stdin: Writable,
  seen: (chunk: Buffer) => void,
  written?: (chunk: Buffer) => void,
): Promise<void> {
  // Flowing mode, chunk by chunk: no buffering and concatenating of chunks (async iteration would
  // copy them into bigger buffers), which measured at a third of the CPU of this path.
  return new Promise<void>((resolve, reject) => {
    let closed = false;
    const onClosed = () => {
      closed = true;
      source.resume();
    };
    stdin.on("error", onClosed);
    stdin.on("close", onClosed);
    stdin.on("drain", () => source.resume());
    source.on("data", (chunk: Buffer) => {
      seen(chunk);
      if (closed) written?.(chunk);
      // The write's callback runs once the pipe took the chunk, or with an error once stdin is gone.
      else if (!stdin.write(chunk, written && (() => written(chunk)))) source.pause();
    });
    source.once("end", () => {
      if (!closed) stdin.end();
      resolve();
    });
    source.once("error", (err) => {
      stdin.destroy();
      reject(err);
    });
    source.once("close", () => {
      // Destroyed without an error and without its end: the stream broke off.
      if (!source.readableEnded && !source.errored) {
        stdin.destroy();
        reject(
          Object.assign(new Error("the stream was closed before its end"), {
            code: "ERR_STREAM_PREMATURE_CLOSE",
          }),
        );
      }
    });
  });
}

function isPipeClosed(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  // ECONNRESET: a launched receive reads a socket (launcher.ts), which it may close with bytes unread.
  return (
    code === "EPIPE" ||
    code === "ECONNRESET" ||
    code === "ERR_STREAM_PREMATURE_CLOSE" ||
    code === "ERR_STREAM_DESTROYED"
  );
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ") || "(no output)";
}

async function verifyAndPromote(
  store: ImageStore,
  staging: string,
  expected: ExpectedStream,
  localParent: ImageVersionInfo | undefined,
  bytes: number,
  sha256: string,
): Promise<ReceiveResult> {
  const fail = (message: string): never => {
    throw new GildError(
      "GILD_STREAM_CHECK_FAILED",
      `received ${expected.line}@${expected.version}: ${message}`,
    );
  };
  if (expected.sha256 !== undefined && sha256 !== expected.sha256.toLowerCase()) {
    throw new GildError(
      "GILD_STREAM_HASH_MISMATCH",
      `stream sha256 ${sha256} differs from the expected ${expected.sha256}`,
    );
  }
  if (expected.sizeBytes !== undefined && bytes !== expected.sizeBytes) {
    throw new GildError(
      "GILD_STREAM_SIZE_MISMATCH",
      `stream has ${bytes} bytes, expected ${expected.sizeBytes}`,
    );
  }
  const entries = await readdir(staging);
  if (entries.length !== 1 || entries[0] !== ROOTFS_NAME) {
    fail(`the stream made ${JSON.stringify(entries)}, not one subvolume named ${ROOTFS_NAME}`);
  }
  const rootfs = join(staging, ROOTFS_NAME);
  if (!(await isSubvolume(rootfs))) fail(`${ROOTFS_NAME} is not a subvolume`);
  const info = await showSubvolume(rootfs, store.pool.launcher);
  if (!info.readOnly) fail("the subvolume is not read-only (the stream did not finish)");
  if (info.receivedUuid === null) fail("the subvolume has no received_uuid");
  if (expected.uuid !== undefined && info.receivedUuid !== expected.uuid) {
    fail(`received_uuid ${info.receivedUuid} differs from the expected ${expected.uuid}`);
  }
  const incremental = info.parentUuid !== null;
  if (expected.parentUuid === null && incremental)
    fail("a full stream was expected, but this one is incremental");
  if (expected.parentUuid && !incremental) fail("an incremental stream was expected, but this one is full");
  if (localParent && info.parentUuid !== localParent.uuid) {
    fail(`its parent is ${info.parentUuid}, not the local copy of the expected parent (${localParent.uuid})`);
  }
  const meta = {
    line: expected.line,
    version: expected.version,
    parent: expected.parentVersion ?? localParent?.version ?? null,
    createdAt: new Date().toISOString(),
    createdBy: expected.createdBy ?? null,
    origin: { kind: "received" as const, uuid: info.receivedUuid as string },
    sizeBytes: expected.imageSizeBytes ?? null,
    kind: expected.kind ?? ("os" as const),
  };
  if (!(await store.promote(staging, meta))) {
    throw new GildError(
      "GILD_IMAGE_EXISTS",
      `image ${expected.line}@${expected.version} appeared while receiving`,
    );
  }
  // What was just checked is what was promoted: no second `btrfs subvolume show`, now or in the
  // inventory that follows.
  const image: ImageVersionInfo = { ...meta, uuid: info.uuid, receivedUuid: info.receivedUuid };
  await store.remember(image);
  return { image, bytes, sha256 };
}
