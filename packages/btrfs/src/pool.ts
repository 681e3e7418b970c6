import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdir, readdir, realpath, rm, stat, statfs } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { assertValidLine, GildError, type Logger, silentLogger } from "@gild/core";
import type { ToolLauncher } from "./launcher.js";
import { deleteSubvolumeUnguarded, findSubvolumes } from "./subvolume.js";

/** The name of an image version's read-only subvolume, and of the one subvolume a stream may make. */
export const ROOTFS_NAME = "rootfs";

// statfs(2) f_type of btrfs.
const BTRFS_SUPER_MAGIC = 0x9123683e;

export interface PoolPaths {
  root: string;
  images: string;
  apps: string;
  data: string;
  staging: string;
  spool: string;
}

export interface PoolOpenOptions {
  /** Create the pool directory if it is missing (its parent must be on btrfs). */
  create?: boolean;
  log?: Logger;
  /**
   * Where the pool's host programs start (launcher.ts): its deletes, the image catalog's `btrfs
   * subvolume show`, receives; this process spawns them without one.
   */
  launcher?: ToolLauncher;
}

/** Start time of a process in clock ticks since boot, or undefined when it is not running. */
function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH")
      return undefined;
    throw err;
  }
  // Field 22; the command name (field 2) may hold spaces, so count from the closing parenthesis.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

let ownStartTime: string | undefined;

/**
 * A gild pool on a btrfs filesystem (docs/architecture.md, The agent's pool and state). Everything gild deletes goes
 * through `removeTree`, which refuses any path outside the pool.
 */
export class Pool {
  readonly paths: Readonly<PoolPaths>;
  readonly log: Logger;
  readonly launcher: ToolLauncher | undefined;

  private constructor(paths: PoolPaths, log: Logger, launcher: ToolLauncher | undefined) {
    this.paths = Object.freeze(paths);
    this.log = log;
    this.launcher = launcher;
  }

  get root(): string {
    return this.paths.root;
  }

  /**
   * Open the pool at `root` on an existing btrfs mount: make the layout if missing, and sweep what
   * interrupted operations left in .staging.
   */
  static async open(root: string, options: PoolOpenOptions = {}): Promise<Pool> {
    const log = options.log ?? silentLogger;
    const absolute = resolve(root);
    try {
      const info = await stat(absolute);
      if (!info.isDirectory())
        throw new GildError("GILD_POOL_INVALID", `pool path ${absolute} is not a directory`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      if (!options.create) {
        throw new GildError("GILD_POOL_INVALID", `pool path ${absolute} does not exist`, {
          hint: "create the directory on a btrfs filesystem, or pass the path of an existing one",
        });
      }
      await mkdir(absolute, { recursive: true });
    }
    const fs = await statfs(absolute);
    if (fs.type !== BTRFS_SUPER_MAGIC) {
      throw new GildError("GILD_NOT_BTRFS", `pool path ${absolute} is not on a btrfs filesystem`, {
        hint: "mount a btrfs filesystem there (mkfs.btrfs on a disk or a loopback file), or choose a path on one",
      });
    }
    const real = await realpath(absolute);
    const paths: PoolPaths = {
      root: real,
      images: join(real, "images"),
      apps: join(real, "apps"),
      data: join(real, "data"),
      staging: join(real, ".staging"),
      spool: join(real, ".spool"),
    };
    for (const dir of [paths.images, paths.apps, paths.data, paths.staging, paths.spool]) {
      await mkdir(dir, { recursive: true });
    }
    // Staging holds half-received trees of untrusted streams: nobody but root may look inside.
    await chmod(paths.staging, 0o700);
    await chmod(paths.spool, 0o700);
    const pool = new Pool(paths, log.child({ component: "pool" }), options.launcher);
    await pool.sweepStaging();
    return pool;
  }

  imageDir(line: string, version: number): string {
    return join(this.paths.images, assertValidLine(line), String(version));
  }

  /** The read-only subvolume of an image version. */
  rootfsPath(line: string, version: number): string {
    return join(this.imageDir(line, version), ROOTFS_NAME);
  }

  appDir(app: string): string {
    return join(this.paths.apps, assertValidLine(app));
  }

  dataDir(app: string): string {
    return join(this.paths.data, assertValidLine(app));
  }

  /** Throws GILD_PATH_OUTSIDE_POOL unless `path` lies strictly inside the pool. */
  assertInside(path: string): string {
    const absolute = resolve(path);
    const rel = relative(this.paths.root, absolute);
    if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) {
      throw new GildError(
        "GILD_PATH_OUTSIDE_POOL",
        `refusing to remove ${absolute}: not inside the pool ${this.paths.root}`,
      );
    }
    return absolute;
  }

  /**
   * Remove a tree inside the pool: its subvolumes (deepest first, read-only ones included), then the
   * rest. The one way gild deletes anything; refuses paths outside the pool, also through symlinks.
   */
  async removeTree(path: string): Promise<void> {
    const absolute = this.assertInside(path);
    let real: string;
    try {
      real = await realpath(absolute);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    this.assertInside(real);
    for (const subvolume of await findSubvolumes(real)) {
      this.assertInside(subvolume);
      await deleteSubvolumeUnguarded(subvolume, this.launcher);
    }
    await rm(real, { recursive: true, force: true });
  }

  /** A fresh plain directory in .staging for one operation, named so a sweep can tell if its owner lives. */
  async newStagingDir(purpose: string): Promise<string> {
    ownStartTime ??= processStartTime(process.pid) ?? "0";
    const name = `${process.pid}.${ownStartTime}.${purpose}.${randomBytes(4).toString("hex")}`;
    const dir = join(this.paths.staging, name);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  /** Remove staging leftovers whose owning process is gone (a crash or kill mid-operation). */
  async sweepStaging(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.paths.staging)) {
      const [pidText, startTime] = name.split(".");
      const pid = Number(pidText);
      const owner = Number.isInteger(pid) && pid > 0 ? processStartTime(pid) : undefined;
      if (owner !== undefined && owner === startTime) continue;
      const path = join(this.paths.staging, name);
      this.log.warn({ path }, "removing leftover of an interrupted operation from .staging");
      await this.removeTree(path);
      removed.push(path);
    }
    return removed;
  }

  /** Free and total bytes of the filesystem the pool is on. */
  async space(): Promise<{ freeBytes: number; totalBytes: number }> {
    const fs = await statfs(this.paths.root);
    return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  }
}
