import { lstat, mkdir, readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import {
  assertValidLine,
  GildError,
  type ImageOrigin,
  type ImageVersionInfo,
  isValidLine,
  type LineKind,
  type Logger,
} from "@gild/core";
import { type ImageMeta, readMeta, writeMeta } from "./meta.js";
import { type Pool, ROOTFS_NAME } from "./pool.js";
import { type SendOptions, send } from "./stream.js";
import {
  createSubvolume,
  isSubvolume,
  setReadOnly,
  showSubvolume,
  snapshotSubvolume,
  subvolumeSize,
} from "./subvolume.js";

/**
 * The catalog of image versions on a pool: images/<line>/<version>/rootfs (a read-only subvolume) plus
 * meta.json. The controller adds versions here (what fills them is @gild/runtime's image-build.ts);
 * agents only receive them (stream.ts).
 */
export class ImageStore {
  readonly pool: Pool;
  private readonly log: Logger;
  /** What `btrfs subvolume show` said of each version dir (by inode): inventories read it often. */
  private readonly cache = new Map<string, { ino: number; info: ImageVersionInfo }>();

  constructor(pool: Pool) {
    this.pool = pool;
    this.log = pool.log.child({ component: "image-store" });
  }

  /** A version's `btrfs send` stream (incremental from `options.parent`): see `send` in stream.ts. */
  sendStream(line: string, version: number, options: SendOptions = {}): Readable {
    return send(this, line, version, options);
  }

  /** Names of the image lines on the pool. */
  async lines(): Promise<string[]> {
    const names = await readdir(this.pool.paths.images);
    return names.filter(isValidLine).sort();
  }

  /** Version numbers of a line, ascending. */
  async versions(line: string): Promise<number[]> {
    assertValidLine(line);
    const names = await readdir(join(this.pool.paths.images, line)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [] as string[];
      throw err;
    });
    return names
      .filter((n) => /^[1-9][0-9]*$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  }

  async latest(line: string): Promise<number | undefined> {
    return (await this.versions(line)).at(-1);
  }

  /**
   * Make a staging directory (holding rootfs) the image version `meta` names, with its meta file:
   * one rename. False when that version is already taken (another build or receive was first).
   */
  async promote(staging: string, meta: ImageMeta): Promise<boolean> {
    await writeMeta(staging, meta);
    await mkdir(join(this.pool.paths.images, meta.line), { recursive: true });
    try {
      await rename(staging, this.pool.imageDir(meta.line, meta.version));
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST" || code === "ENOTEMPTY") return false;
      throw err;
    }
  }

  /**
   * Remember what the caller just checked of a version it promoted (receive reads its subvolume before
   * promoting it): the next inventory needs no second `btrfs subvolume show`.
   */
  async remember(info: ImageVersionInfo): Promise<void> {
    const dir = await lstat(this.pool.imageDir(info.line, info.version));
    this.cache.set(this.pool.rootfsPath(info.line, info.version), { ino: dir.ino, info });
  }

  async exists(line: string, version: number): Promise<boolean> {
    return isSubvolume(this.pool.rootfsPath(line, version));
  }

  /** One version with its subvolume's uuids; GILD_IMAGE_NOT_FOUND when absent. */
  async get(line: string, version: number): Promise<ImageVersionInfo> {
    const rootfs = this.pool.rootfsPath(line, version);
    // Only absence is "not found": EACCES or EIO on a version dir is a fault of its own.
    const dir = await lstat(this.pool.imageDir(line, version)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ENOTDIR") return undefined;
      throw err;
    });
    if (!dir || !(await isSubvolume(rootfs))) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image ${line}@${version} is not on this pool`);
    }
    // A version never changes once promoted; a removed and remade one is a new directory (another
    // inode), so the inode is enough to know the cached answer is still this version's.
    const cached = this.cache.get(rootfs);
    if (cached && cached.ino === dir.ino) return cached.info;
    const [sub, meta] = await Promise.all([
      showSubvolume(rootfs, this.pool.launcher),
      readMeta(this.pool.imageDir(line, version)),
    ]);
    const info: ImageVersionInfo = {
      line,
      version,
      kind: meta?.kind ?? "os",
      uuid: sub.uuid,
      receivedUuid: sub.receivedUuid,
      parent: meta?.parent ?? null,
      createdAt: meta?.createdAt ?? sub.createdAt ?? new Date(0).toISOString(),
      sizeBytes: meta?.sizeBytes ?? null,
      origin: meta?.origin ?? null,
      createdBy: meta?.createdBy ?? null,
    };
    this.cache.set(rootfs, { ino: dir.ino, info });
    return info;
  }

  /** Every version of one line, or of all lines, ascending. */
  async list(line?: string): Promise<ImageVersionInfo[]> {
    const lines = line === undefined ? await this.lines() : [assertValidLine(line)];
    const out: ImageVersionInfo[] = [];
    for (const l of lines) {
      for (const v of await this.versions(l)) {
        // A version dir without its subvolume is not an image (never promoted that way, but be robust).
        if (await this.exists(l, v)) out.push(await this.get(l, v));
      }
    }
    return out;
  }

  /** The local copy whose received_uuid (or own uuid) is `uuid`: how incremental parents are found. */
  async findByUuid(uuid: string): Promise<ImageVersionInfo | undefined> {
    for (const info of await this.list()) {
      if (info.receivedUuid === uuid || info.uuid === uuid) return info;
    }
    return undefined;
  }

  /** Remove one version (its subvolume and meta). */
  async remove(line: string, version: number): Promise<void> {
    const dir = this.pool.imageDir(line, version);
    if (!(await this.exists(line, version))) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image ${line}@${version} is not on this pool`);
    }
    await this.pool.removeTree(dir);
    this.log.info({ line, version }, "image version removed");
  }

  /**
   * Make the next version of `line` (docs/architecture.md, Images): a subvolume in .staging, empty or a
   * writable snapshot of version `from`, which `fill` fills (a copy, debootstrap, a command in a
   * container: the builds are in @gild/runtime, image-build.ts); then read-only, its meta, and
   * promoted by renaming its directory to the next free version number. Anything that fails leaves
   * nothing under images/. A line keeps one kind (default "os"): a version of the other kind is refused
   * with GILD_LINE_KIND_MISMATCH before anything is made.
   */
  async addVersion(
    line: string,
    version: { from: number | null; origin: ImageOrigin; createdBy?: string; kind?: LineKind },
    fill: (rootfs: string) => Promise<void>,
  ): Promise<ImageVersionInfo> {
    assertValidLine(line);
    const kind = version.kind ?? "os";
    await this.assertKind(line, kind);
    const parent = version.from;
    const parentRootfs = parent === null ? null : this.pool.rootfsPath(line, parent);
    if (parentRootfs !== null && !(await isSubvolume(parentRootfs))) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image ${line}@${parent} is not on this pool`);
    }
    const staging = await this.pool.newStagingDir(`build-${line}`);
    const rootfs = join(staging, ROOTFS_NAME);
    try {
      // The pool's launcher, when it has one: a build forks the daemon only for what `fill` runs.
      const launcher = this.pool.launcher;
      if (parentRootfs === null) await createSubvolume(rootfs, launcher);
      else await snapshotSubvolume(parentRootfs, rootfs, { launcher });
      await fill(rootfs);
      await setReadOnly(rootfs, launcher);
      const sizeBytes = await subvolumeSize(rootfs, launcher);
      // Another build of the same line may promote first: take the next number and try again.
      for (let attempt = 0; ; attempt++) {
        const next = ((await this.latest(line)) ?? 0) + 1;
        const meta: ImageMeta = {
          line,
          version: next,
          parent,
          createdAt: new Date().toISOString(),
          createdBy: version.createdBy ?? null,
          origin: version.origin,
          sizeBytes,
          kind,
        };
        if (!(await this.promote(staging, meta))) {
          if (attempt < 10) continue;
          throw new GildError("GILD_IMAGE_EXISTS", `${line}@${next} was taken by another build, again`, {
            hint: "too many builds of this line at once; try again",
          });
        }
        this.log.info(
          { line, version: next, kind, parent, origin: version.origin.kind },
          "image version created",
        );
        return await this.get(line, next);
      }
    } catch (err) {
      await this.pool.removeTree(staging);
      throw err;
    }
  }

  /**
   * Refuse a version of `kind` on a line of the other kind. The latest version speaks for the line: a
   * line's versions all share one kind, since every one was made through this check.
   */
  private async assertKind(line: string, kind: LineKind): Promise<void> {
    const latest = await this.latest(line);
    if (latest === undefined) return;
    const meta = await readMeta(this.pool.imageDir(line, latest));
    const lineKind = meta?.kind ?? "os";
    if (lineKind === kind) return;
    throw new GildError(
      "GILD_LINE_KIND_MISMATCH",
      `${line} is ${KIND_NAMES[lineKind]}, not ${KIND_NAMES[kind]}`,
      {
        hint:
          lineKind === "code"
            ? `make its next version with: gild code update ${line} --from-dir DIR`
            : `make its next version with: gild image update ${line} COMMAND... or gild image create ${line} --from-dir DIR`,
      },
    );
  }
}

const KIND_NAMES: Record<LineKind, string> = { os: "an os image line", code: "a code line" };
