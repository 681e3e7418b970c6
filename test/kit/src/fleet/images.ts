import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { buildBusyboxRoot } from "../busybox-image.js";
import type { Fleet } from "./types.js";

/** An image version as `gild image create/update --json` prints it (the fields tests read). */
export interface ImageVersionView {
  line: string;
  version: number;
  [field: string]: unknown;
}

export interface BusyboxImageOptions {
  /** Shown on /index.html (buildBusyboxRoot's marker). */
  marker: string;
  /** A file of random bytes added to the tree (path relative to its root): weight for transfer tests. */
  payload?: { path: string; bytes: number };
  /** Where the tree is built; default <fleet dir>/tree/<line>. */
  dir?: string;
}

/** Build a busybox root and make the image line `line` from it (`gild image create --from-dir`). */
export async function createBusyboxImage(
  fleet: Fleet,
  line: string,
  options: BusyboxImageOptions,
): Promise<ImageVersionView> {
  const tree = options.dir ?? join(fleet.dir, "tree", line);
  await buildBusyboxRoot(tree, { marker: options.marker });
  if (options.payload) {
    const file = join(tree, options.payload.path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, randomBytes(options.payload.bytes));
  }
  return fleet.gildJson<ImageVersionView>(["image", "create", line, "--from-dir", tree]);
}

export interface ImageUpdateOptions {
  /** Start from this version instead of the latest (--from). */
  from?: number;
}

/** The arguments of `gild image update <line> [--from N] -- /bin/sh -c <script>`. */
export function imageUpdateArgs(line: string, script: string, options: ImageUpdateOptions = {}): string[] {
  const from = options.from === undefined ? [] : ["--from", String(options.from)];
  return ["image", "update", line, ...from, "--", "/bin/sh", "-c", script];
}

/** The next version of `line`: `script` run by /bin/sh inside the latest version (or `from`). */
export function updateImage(
  fleet: Fleet,
  line: string,
  script: string,
  options: ImageUpdateOptions = {},
): Promise<ImageVersionView> {
  return fleet.gildJson<ImageVersionView>(imageUpdateArgs(line, script, options));
}
