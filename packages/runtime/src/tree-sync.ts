import type { BigIntStats } from "node:fs";
import {
  chmod,
  constants,
  copyFile,
  lchown,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readlink,
  rm,
  symlink,
  unlink,
  utimes,
} from "node:fs/promises";
import { join } from "node:path";
import { GildError } from "@gild/core";

/** What `syncTree` changed in the target. */
export interface TreeSyncStats {
  /** Entries whose data was written: regular files copied (new or rewritten), symlinks and directories made. */
  filesWritten: number;
  /** Entries of the target that were not in the source, or had another type there (a directory counts once). */
  entriesRemoved: number;
  /** Entries left as they were but for their mode, owner or times. */
  metadataUpdated: number;
  /** Bytes of regular file data written. */
  bytesWritten: number;
}

export interface SyncTreeOptions {
  /**
   * A read-only tree equal to `target` as it is now (the version `target` was snapshotted from): listed
   * and read (directories, symlinks, contents to compare) instead of `target`. Reading `target` would
   * move the atimes of what was read (relatime moves any older than a day), and each inode whose atime
   * moved costs a utimes command in the send stream: one per directory of the tree. A read-only btrfs
   * subvolume keeps its atimes.
   */
  base?: string;
  /** Stops the sync between entries, leaving the target half-synced (to be thrown away). */
  cancelSignal?: AbortSignal;
}

type EntryType = "file" | "dir" | "symlink";

/** An entry of the target: where it is written, and where what it holds now is read from. */
interface TargetPath {
  path: string;
  read: string;
}

function child(target: TargetPath, name: string): TargetPath {
  return { path: join(target.path, name), read: join(target.read, name) };
}

interface SyncContext {
  stats: TreeSyncStats;
  signal: AbortSignal | undefined;
}

/**
 * Make the directory `target` equal to `source`, writing only what differs: `target` is a writable
 * snapshot of the previous version, so `btrfs send -p <previous>` of the result carries only the changes
 * (a one-file change ships as a tiny delta, not the whole tree as a fresh copy would).
 *
 * A regular file is taken as unchanged when its size and mtime match (rsync's quick check); when only
 * the mtime differs the contents are compared, and a file whose contents match gets its metadata fixed
 * and no data written. Trees hold files, directories and symlinks only: anything else is refused.
 * Limits, as Node's fs has no call for them: extended attributes (and so ACLs and file capabilities) are
 * not synced, and hard links in the source are copied as separate files. Times are set to the
 * microsecond (Node's utimes), and mtimes are compared to that precision.
 */
export async function syncTree(
  source: string,
  target: string,
  options: SyncTreeOptions = {},
): Promise<TreeSyncStats> {
  const stats: TreeSyncStats = { filesWritten: 0, entriesRemoved: 0, metadataUpdated: 0, bytesWritten: 0 };
  const ctx: SyncContext = { stats, signal: options.cancelSignal };
  const src = await lstat(source, { bigint: true });
  const dst = await lstat(target, { bigint: true });
  if (!src.isDirectory()) throw new GildError("GILD_IMAGE_SOURCE_INVALID", `${source} is not a directory`);
  // A programmer's mistake (the target is a snapshot the builder made), not a bad source.
  if (!dst.isDirectory()) throw new Error(`syncTree: target ${target} is not a directory`);
  await syncDir(source, { path: target, read: options.base ?? target }, src, dst, ctx);
  return stats;
}

async function syncDir(
  source: string,
  target: TargetPath,
  src: BigIntStats,
  before: BigIntStats | undefined,
  ctx: SyncContext,
): Promise<void> {
  const stats = ctx.stats;
  if (before === undefined) {
    // Owner-only until its contents are in; its own mode is set last, as a read-only mode would stop them.
    await mkdir(target.path, { mode: 0o700 });
    stats.filesWritten++;
  } else if (!isRoot() && (before.mode & 0o300n) !== 0o300n) {
    await chmod(target.path, Number(before.mode & 0o7777n) | 0o700);
  }
  const names = (await readdir(source)).sort();
  const wanted = new Set(names);
  if (before !== undefined) {
    for (const name of (await readdir(target.read)).sort()) {
      if (wanted.has(name)) continue;
      await rm(join(target.path, name), { recursive: true });
      stats.entriesRemoved++;
    }
  }
  // A few entries at a time: each is a handful of stats and maybe a copy, on libuv's thread pool, and
  // entries of one directory are independent (distinct names; a hard link is broken, not written through).
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++] as string;
      await syncEntry(join(source, name), child(target, name), ctx);
    }
  };
  await Promise.all(Array.from({ length: Math.min(ENTRY_CONCURRENCY, names.length) }, worker));
  // After the contents, whose changes moved the directory's mtime. Counted as a metadata update when it
  // differed before anything was done to it (its changed contents may have moved its mtime to the very
  // clock tick of the source's, file times being that coarse).
  const now = await lstat(target.path, { bigint: true });
  if (!sameMeta(src, now)) await setMeta(target.path, src, now, "dir");
  if (before !== undefined && !sameMeta(src, before)) stats.metadataUpdated++;
}

async function syncEntry(source: string, target: TargetPath, ctx: SyncContext): Promise<void> {
  ctx.signal?.throwIfAborted();
  const stats = ctx.stats;
  const src = await lstat(source, { bigint: true });
  const type = typeOf(src);
  if (type === undefined) {
    throw new GildError(
      "GILD_IMAGE_SOURCE_INVALID",
      `${source} is a ${specialName(src)}: a tree may hold only files, directories and symlinks`,
    );
  }
  let dst = await lstatIfExists(target.path);
  if (dst !== undefined && typeOf(dst) !== type) {
    await rm(target.path, { recursive: true });
    stats.entriesRemoved++;
    dst = undefined;
  }
  if (type === "dir") return syncDir(source, target, src, dst, ctx);
  if (type === "symlink") return syncSymlink(source, target, src, dst, stats);
  return syncFile(source, target, src, dst, stats);
}

async function syncFile(
  source: string,
  { path: target, read }: TargetPath,
  src: BigIntStats,
  dst: BigIntStats | undefined,
  stats: TreeSyncStats,
): Promise<void> {
  if (dst !== undefined && dst.size === src.size) {
    const same = sameTime(src.mtimeNs, dst.mtimeNs) || (await sameContents(source, read));
    if (same) {
      if (sameMeta(src, dst)) return;
      // Metadata set on a hard-linked inode would change its other names too: give this one its own.
      if (dst.nlink > 1n) {
        await unlink(target);
        dst = undefined;
      } else {
        await setMeta(target, src, dst, "file");
        stats.metadataUpdated++;
        return;
      }
    }
  }
  // Rewritten in place (same inode, so the stream says "write", not "unlink and create"), except a
  // hard-linked one, whose other names must keep their contents.
  if (dst !== undefined && dst.nlink > 1n) {
    await unlink(target);
    dst = undefined;
  }
  await copyData(source, target, dst);
  stats.filesWritten++;
  stats.bytesWritten += Number(src.size);
  await setMeta(target, src, await lstat(target, { bigint: true }), "file");
}

async function syncSymlink(
  source: string,
  { path: target, read }: TargetPath,
  src: BigIntStats,
  dst: BigIntStats | undefined,
  stats: TreeSyncStats,
): Promise<void> {
  const link = await readlink(source);
  if (dst !== undefined && (await readlink(read)) === link) {
    if (sameMeta(src, dst)) return;
    await setMeta(target, src, dst, "symlink");
    stats.metadataUpdated++;
    return;
  }
  if (dst !== undefined) await unlink(target);
  await symlink(link, target);
  stats.filesWritten++;
  await setMeta(target, src, await lstat(target, { bigint: true }), "symlink");
}

/** Copy the data of `source` over `target` (truncated in place when it exists). */
async function copyData(source: string, target: string, dst: BigIntStats | undefined): Promise<void> {
  // Without root, a file whose mode forbids writing is made writable first; its mode is set after.
  if (dst !== undefined && !isRoot() && (dst.mode & 0o200n) === 0n) {
    await chmod(target, Number(dst.mode & 0o7777n) | 0o200);
  }
  // A reflink where source and target share a btrfs, a kernel-side copy elsewhere.
  await copyFile(source, target, constants.COPYFILE_FICLONE);
}

/** Give `target` the owner, mode and times of `src` (each only when it differs from `dst`). */
async function setMeta(target: string, src: BigIntStats, dst: BigIntStats, type: EntryType): Promise<void> {
  // Owner before mode: chown clears the setuid and setgid bits.
  const owned = src.uid === dst.uid && src.gid === dst.gid;
  if (!owned) await lchown(target, Number(src.uid), Number(src.gid));
  // A symlink's mode means nothing on Linux, and there is no lchmod.
  if (type !== "symlink" && (!owned || modeOf(src) !== modeOf(dst))) await chmod(target, modeOf(src));
  const atime = seconds(src.atimeNs);
  const mtime = seconds(src.mtimeNs);
  if (type === "symlink") await lutimes(target, atime, mtime);
  else await utimes(target, atime, mtime);
}

/** Same mode, owner and mtime (atime is left out: reading a file moves it). */
function sameMeta(a: BigIntStats, b: BigIntStats): boolean {
  return modeOf(a) === modeOf(b) && a.uid === b.uid && a.gid === b.gid && sameTime(a.mtimeNs, b.mtimeNs);
}

/** Equal to the microsecond: what Node's utimes can set (libuv truncates the nanoseconds). */
function sameTime(a: bigint, b: bigint): boolean {
  const d = a - b;
  return d < 1000n && d > -1000n;
}

/**
 * Seconds as a double that libuv turns back into exactly this microsecond: a double near 1.7e9 is off by
 * up to 0.24 µs, and libuv truncates, so aim at the middle of the microsecond.
 */
function seconds(ns: bigint): number {
  return (Number(ns / 1000n) + 0.5) / 1e6;
}

function modeOf(st: BigIntStats): number {
  return Number(st.mode & 0o7777n);
}

const CHUNK = 256 * 1024;
const ENTRY_CONCURRENCY = 8;

async function sameContents(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, "r"), open(b, "r")]);
  try {
    const ba = Buffer.allocUnsafe(CHUNK);
    const bb = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, CHUNK, null), fb.read(bb, 0, CHUNK, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

function typeOf(st: BigIntStats): EntryType | undefined {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  return undefined;
}

function specialName(st: BigIntStats): string {
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isBlockDevice()) return "block device";
  if (st.isCharacterDevice()) return "character device";
  return "special file";
}

async function lstatIfExists(path: string): Promise<BigIntStats | undefined> {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}
