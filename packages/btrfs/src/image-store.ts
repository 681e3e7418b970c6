import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, rename, stat } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import {
  assertValidLine,
  GildError,
  type ImageOrigin,
  type ImageVersionInfo,
  isValidLine,
  type Logger,
} from "@gild/core";
import { aptMirror } from "./apt-mirror.js";
import { runTool } from "./exec.js";
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

export interface BuildOptions {
  /** Who asked for the version (user name, API client), recorded in its meta. */
  createdBy?: string;
  /** Each line a build command prints, as it prints it. */
  onOutput?: (line: string) => void;
  cancelSignal?: AbortSignal;
}

export interface DebootstrapSource {
  suite: string;
  include?: string[];
  /** Default: the Debian mirror this machine's apt uses. */
  mirror?: string;
  /** debootstrap --variant; default minbase. */
  variant?: string;
  /** Keep downloaded packages here between builds (absolute path). */
  cacheDir?: string;
}

export interface UpdateOptions extends BuildOptions {
  /** Version to start from; default the latest. */
  from?: number;
  env?: Record<string, string>;
}

/**
 * Versions of image lines on a pool: images/<line>/<version>/rootfs (a read-only subvolume) plus
 * meta.json. The controller makes versions here; agents only receive them (stream.ts).
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

  async exists(line: string, version: number): Promise<boolean> {
    return isSubvolume(this.pool.rootfsPath(line, version));
  }

  /** One version with its subvolume's uuids; GILD_IMAGE_NOT_FOUND when absent. */
  async get(line: string, version: number): Promise<ImageVersionInfo> {
    const rootfs = this.pool.rootfsPath(line, version);
    const dir = await lstat(this.pool.imageDir(line, version)).catch(() => undefined);
    if (!dir || !(await isSubvolume(rootfs))) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image ${line}@${version} is not on this pool`);
    }
    // A version never changes once promoted; a removed and remade one is a new directory (another
    // inode), so the inode is enough to know the cached answer is still this version's.
    const cached = this.cache.get(rootfs);
    if (cached && cached.ino === dir.ino) return cached.info;
    const [sub, meta] = await Promise.all([
      showSubvolume(rootfs),
      readMeta(this.pool.imageDir(line, version)),
    ]);
    const info: ImageVersionInfo = {
      line,
      version,
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

  /** Make the next version of `line` from a directory tree (copied with reflinks where possible). */
  async createFromDir(
    line: string,
    sourceDir: string,
    options: BuildOptions = {},
  ): Promise<ImageVersionInfo> {
    const source = resolve(sourceDir);
    const info = await stat(source).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new GildError("GILD_IMAGE_SOURCE_INVALID", `${source} is not a directory`);
    }
    return this.build(line, null, { kind: "dir", path: source }, options, async (rootfs) => {
      await createSubvolume(rootfs);
      await runTool("cp", ["-a", "--reflink=auto", `${source}/.`, `${rootfs}/`], {
        failureCode: "GILD_IMAGE_COMMAND_FAILED",
        cancelSignal: options.cancelSignal,
      });
    });
  }

  /** Make the next version of `line` with debootstrap (a Debian root: usable by nspawn as it is). */
  async createFromDebootstrap(
    line: string,
    source: DebootstrapSource,
    options: BuildOptions = {},
  ): Promise<ImageVersionInfo> {
    if (!/^[a-z][a-z0-9-]*$/.test(source.suite)) {
      throw new GildError("GILD_IMAGE_SOURCE_INVALID", `"${source.suite}" is not a Debian suite name`);
    }
    const include = source.include ?? [];
    for (const pkg of include) {
      if (!/^[a-z0-9][a-z0-9+.-]*$/.test(pkg)) {
        throw new GildError("GILD_IMAGE_SOURCE_INVALID", `"${pkg}" is not a Debian package name`);
      }
    }
    if (source.cacheDir !== undefined && !isAbsolute(source.cacheDir)) {
      throw new GildError("GILD_IMAGE_SOURCE_INVALID", "the debootstrap cache dir must be an absolute path");
    }
    const mirror = source.mirror ?? (await aptMirror());
    const origin: ImageOrigin = { kind: "debootstrap", suite: source.suite, include, mirror };
    return this.build(line, null, origin, options, async (rootfs) => {
      await createSubvolume(rootfs);
      if (source.cacheDir) await mkdir(source.cacheDir, { recursive: true });
      await runTool(
        "debootstrap",
        [
          `--variant=${source.variant ?? "minbase"}`,
          ...(include.length > 0 ? [`--include=${include.join(",")}`] : []),
          ...(source.cacheDir ? [`--cache-dir=${source.cacheDir}`] : []),
          source.suite,
          rootfs,
          mirror,
        ],
        {
          failureCode: "GILD_IMAGE_COMMAND_FAILED",
          onOutput: options.onOutput,
          cancelSignal: options.cancelSignal,
        },
      );
    });
  }

  /**
   * Make the next version from the latest (or `from`) with `command` run inside it in a container:
   * writable snapshot, run, read-only. A command that fails makes no version.
   */
  async update(
    line: string,
    command: readonly string[],
    options: UpdateOptions = {},
  ): Promise<ImageVersionInfo> {
    if (command.length === 0) throw new GildError("GILD_BAD_REQUEST", "image update needs a command to run");
    const from = options.from ?? (await this.latest(line));
    if (from === undefined) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image line ${line} has no version to update`, {
        hint: `create the first version with: gild image create ${line} --from-dir DIR | --debootstrap SUITE`,
      });
    }
    const parentRootfs = this.pool.rootfsPath(line, from);
    if (!(await isSubvolume(parentRootfs))) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image ${line}@${from} is not on this pool`);
    }
    const origin: ImageOrigin = { kind: "update", from, command: [...command] };
    return this.build(line, from, origin, options, async (rootfs) => {
      await snapshotSubvolume(parentRootfs, rootfs);
      await runInRoot(rootfs, command, options);
    });
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
   * Build a version in .staging (fill -> read-only -> meta) and promote it by renaming its directory
   * to the next free version number. Anything that fails leaves nothing under images/.
   */
  private async build(
    line: string,
    parent: number | null,
    origin: ImageOrigin,
    options: BuildOptions,
    fill: (rootfs: string) => Promise<void>,
  ): Promise<ImageVersionInfo> {
    assertValidLine(line);
    const staging = await this.pool.newStagingDir(`build-${line}`);
    const rootfs = join(staging, ROOTFS_NAME);
    try {
      await fill(rootfs);
      await setReadOnly(rootfs);
      const sizeBytes = await subvolumeSize(rootfs);
      // Another build of the same line may promote first: take the next number and try again.
      for (let attempt = 0; ; attempt++) {
        const version = ((await this.latest(line)) ?? 0) + 1;
        const meta: ImageMeta = {
          line,
          version,
          parent,
          createdAt: new Date().toISOString(),
          createdBy: options.createdBy ?? null,
          origin,
          sizeBytes,
        };
        if (!(await this.promote(staging, meta))) {
          if (attempt < 10) continue;
          throw new GildError("GILD_IMAGE_EXISTS", `${line}@${version} was taken by another build, again`, {
            hint: "too many builds of this line at once; try again",
          });
        }
        this.log.info({ line, version, parent, origin: origin.kind }, "image version created");
        return await this.get(line, version);
      }
    } catch (err) {
      await this.pool.removeTree(staging);
      throw err;
    }
  }
}

/** Run a one-shot command inside a root with systemd-nspawn (host network, for apt). */
export async function runInRoot(
  rootfs: string,
  command: readonly string[],
  options: {
    env?: Record<string, string>;
    onOutput?: (line: string) => void;
    cancelSignal?: AbortSignal;
  } = {},
): Promise<void> {
  const env = { DEBIAN_FRONTEND: "noninteractive", ...options.env };
  await runTool(
    "systemd-nspawn",
    [
      "--quiet",
      // systemd is not PID 1 on every machine gild builds on; nothing needs the container registered.
      "--register=no",
      "--keep-unit",
      "--as-pid2",
      "--console=pipe",
      // Leave the image's own resolv.conf and localtime alone: bind the host's for the run only.
      "--resolv-conf=bind-host",
      "--timezone=off",
      "--link-journal=no",
      `--machine=gild-build-${randomBytes(4).toString("hex")}`,
      `--directory=${rootfs}`,
      ...Object.entries(env).map(([k, v]) => `--setenv=${k}=${v}`),
      "--",
      ...command,
    ],
    {
      failureCode: "GILD_IMAGE_COMMAND_FAILED",
      onOutput: options.onOutput,
      cancelSignal: options.cancelSignal,
    },
  );
}
