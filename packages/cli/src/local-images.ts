import type { ImageStore } from "@gild/btrfs";
import { GildError, type ImageOrigin, type ImageVersionInfo, parseImageRef } from "@gild/core";

/** The source of a new image version, as the operator chose it. */
export type ImageSource =
  | { kind: "dir"; path: string }
  | { kind: "debootstrap"; suite: string; include: string[]; mirror?: string; cacheDir?: string };

export interface LocalImageOptions {
  pool: string;
  actor: string;
  onOutput?: (line: string) => void;
}

// The btrfs and runtime packages (execa and ~150 modules with them) are loaded only by the commands
// that work on a local pool: every other command, `gild image push` included, started ~0.2 s slower
// for loading them (measured).
async function openStore(poolPath: string): Promise<ImageStore> {
  const { ImageStore, Pool } = await import("@gild/btrfs");
  return new ImageStore(await Pool.open(poolPath, { create: true }));
}

async function openBuilder(poolPath: string) {
  const { ImageBuilder } = await import("@gild/runtime");
  return new ImageBuilder(await openStore(poolPath));
}

/** `gild image create --pool`: a new version of a line on a local pool. */
export async function createLocalImage(
  line: string,
  source: ImageSource,
  options: LocalImageOptions,
): Promise<ImageVersionInfo> {
  const builder = await openBuilder(options.pool);
  const build = { createdBy: options.actor, onOutput: options.onOutput };
  if (source.kind === "dir") return builder.createFromDir(line, source.path, build);
  return builder.createFromDebootstrap(
    line,
    { suite: source.suite, include: source.include, mirror: source.mirror, cacheDir: source.cacheDir },
    build,
  );
}

/** `gild image update --pool`: the next version from a command run in the previous one. */
export async function updateLocalImage(
  line: string,
  command: string[],
  options: LocalImageOptions & { from?: number; env?: Record<string, string> },
): Promise<ImageVersionInfo> {
  const builder = await openBuilder(options.pool);
  return builder.update(line, command, {
    createdBy: options.actor,
    onOutput: options.onOutput,
    from: options.from,
    env: options.env,
  });
}

export async function listLocalImages(poolPath: string, line?: string): Promise<ImageVersionInfo[]> {
  return (await openStore(poolPath)).list(line);
}

export async function removeLocalImage(poolPath: string, ref: string): Promise<{ removed: string }> {
  const { line, version } = parseImageRef(ref);
  await (await openStore(poolPath)).remove(line, version);
  return { removed: `${line}@${version}` };
}

/** One line that says where a version came from. */
export function describeOrigin(origin: ImageOrigin | null): string {
  if (origin === null) return "-";
  switch (origin.kind) {
    case "dir":
      return `dir ${origin.path}`;
    case "debootstrap":
      return `debootstrap ${origin.suite}${origin.include.length > 0 ? ` +${origin.include.join(",")}` : ""}`;
    case "update":
      return `update of @${origin.from}: ${origin.command.join(" ")}`;
    case "received":
      return `received ${origin.uuid.slice(0, 8)}`;
  }
}

/** Exactly one image source from the create flags, or a coded usage error. */
export function imageSourceFromFlags(flags: {
  fromDir?: string;
  debootstrap?: string;
  include?: string[];
  mirror?: string;
  cacheDir?: string;
}): ImageSource {
  if ((flags.fromDir === undefined) === (flags.debootstrap === undefined)) {
    throw new GildError("GILD_BAD_REQUEST", "give exactly one image source", {
      hint: "use --from-dir DIR, or --debootstrap SUITE [--include pkg,pkg]",
    });
  }
  if (flags.fromDir !== undefined) return { kind: "dir", path: flags.fromDir };
  return {
    kind: "debootstrap",
    suite: flags.debootstrap as string,
    include: flags.include ?? [],
    mirror: flags.mirror,
    cacheDir: flags.cacheDir,
  };
}
