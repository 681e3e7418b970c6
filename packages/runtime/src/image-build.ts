import { randomBytes } from "node:crypto";
import { mkdir, stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import type { ImageStore } from "@gild/btrfs";
import { formatBytes, GildError, type ImageOrigin, type ImageVersionInfo, type LineKind } from "@gild/core";
import { aptMirror } from "./apt-mirror.js";
import { runHost } from "./host-exec.js";
import { buildCommandNspawnArgs } from "./nspawn-args.js";
import { syncTree, type TreeSyncStats } from "./tree-sync.js";

export interface BuildOptions {
  /** Who asked for the version (user name, API client), recorded in its meta. */
  createdBy?: string;
  /** Each line a build command prints, as it prints it. */
  onOutput?: (line: string) => void;
  cancelSignal?: AbortSignal;
}

export interface DirBuildOptions extends BuildOptions {
  /** What the line holds; default "os". A line keeps one kind (GILD_LINE_KIND_MISMATCH otherwise). */
  kind?: LineKind;
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
 * How image versions are made (docs/architecture.md, Images): from a directory, with debootstrap, or by
 * a command run in a container on the previous version. The catalog (`@gild/btrfs` ImageStore) gives
 * each build its subvolume in staging and promotes it; this fills it. Containers are this package's
 * business, so the nspawn arguments come from nspawn-args.ts, as the app containers' do.
 */
export class ImageBuilder {
  constructor(private readonly store: ImageStore) {}

  /**
   * The next version of `line` from a directory tree: copied (with reflinks where possible) into an
   * empty subvolume, or, for a code line that has a version, synced into a snapshot of its latest, so
   * the new version's incremental stream carries only what changed.
   */
  async createFromDir(
    line: string,
    sourceDir: string,
    options: DirBuildOptions = {},
  ): Promise<ImageVersionInfo> {
    const kind = options.kind ?? "os";
    const source = resolve(sourceDir);
    const info = await stat(source).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ENOTDIR") return undefined;
      throw new GildError(
        "GILD_IMAGE_SOURCE_INVALID",
        `${source} cannot be read: ${err.code ?? err.message}`,
        {
          cause: err,
        },
      );
    });
    if (!info?.isDirectory()) {
      throw new GildError("GILD_IMAGE_SOURCE_INVALID", `${source} is not a directory`);
    }
    const origin: ImageOrigin = { kind: "dir", path: source };
    // Code lines only: an os image from a directory stays a fresh copy, as it always was. (Should the
    // line hold os images, addVersion refuses the code version before it snapshots `from`.)
    const from = kind === "code" ? ((await this.store.latest(line)) ?? null) : null;
    if (from !== null) {
      return this.store.addVersion(line, this.version(from, origin, options, kind), async (rootfs) => {
        const base = this.store.pool.rootfsPath(line, from);
        const stats = await syncTree(source, rootfs, { base, cancelSignal: options.cancelSignal });
        options.onOutput?.(describeSync(stats));
      });
    }
    return this.store.addVersion(line, this.version(null, origin, options, kind), (rootfs) =>
      runHost("cp", ["-a", "--reflink=auto", `${source}/.`, `${rootfs}/`], {
        failureCode: "GILD_IMAGE_COMMAND_FAILED",
        timeoutMs: 0,
        cancelSignal: options.cancelSignal,
      }).then(() => undefined),
    );
  }

  /** The next version of `line` with debootstrap (a Debian root: usable by nspawn as it is). */
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
    return this.store.addVersion(line, this.version(null, origin, options, "os"), async (rootfs) => {
      if (source.cacheDir) await mkdir(source.cacheDir, { recursive: true });
      await runHost(
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
          timeoutMs: 0,
          onOutput: options.onOutput,
          cancelSignal: options.cancelSignal,
        },
      );
    });
  }

  /**
   * The next version from the latest (or `from`) with `command` run inside it in a container: writable
   * snapshot, run, read-only. A command that fails makes no version.
   */
  async update(
    line: string,
    command: readonly string[],
    options: UpdateOptions = {},
  ): Promise<ImageVersionInfo> {
    if (command.length === 0) throw new GildError("GILD_BAD_REQUEST", "image update needs a command to run");
    const from = options.from ?? (await this.store.latest(line));
    if (from === undefined) {
      throw new GildError("GILD_IMAGE_NOT_FOUND", `image line ${line} has no version to update`, {
        hint: `create the first version with: gild image create ${line} --from-dir DIR | --debootstrap SUITE`,
      });
    }
    const origin: ImageOrigin = { kind: "update", from, command: [...command] };
    return this.store.addVersion(line, this.version(from, origin, options, "os"), (rootfs) =>
      runInRoot(rootfs, command, options),
    );
  }

  private version(from: number | null, origin: ImageOrigin, options: BuildOptions, kind: LineKind) {
    return {
      from,
      origin,
      kind,
      ...(options.createdBy === undefined ? {} : { createdBy: options.createdBy }),
    };
  }
}

/** One line for a build's output: "synced: 1 file written (12 B), 0 removed, 0 metadata updated". */
function describeSync(stats: TreeSyncStats): string {
  const files = `${stats.filesWritten} ${stats.filesWritten === 1 ? "file" : "files"}`;
  return `synced: ${files} written (${formatBytes(stats.bytesWritten)}), ${stats.entriesRemoved} removed, ${stats.metadataUpdated} metadata updated`;
}

/** Run a one-shot command inside a root with systemd-nspawn (host network, for apt). */
async function runInRoot(
  rootfs: string,
  command: readonly string[],
  options: {
    env?: Record<string, string>;
    onOutput?: (line: string) => void;
    cancelSignal?: AbortSignal;
  } = {},
): Promise<void> {
  const env = { DEBIAN_FRONTEND: "noninteractive", ...options.env };
  const machine = `gild-build-${randomBytes(4).toString("hex")}`;
  await runHost("systemd-nspawn", buildCommandNspawnArgs(rootfs, command, env, machine), {
    failureCode: "GILD_IMAGE_COMMAND_FAILED",
    timeoutMs: 0,
    onOutput: options.onOutput,
    cancelSignal: options.cancelSignal,
  });
}
