import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ImageOrigin, LineKind } from "@gild/core";

/** What gild records beside an image version's subvolume, in images/<line>/<version>/meta.json. */
export interface ImageMeta {
  line: string;
  version: number;
  parent: number | null;
  createdAt: string;
  createdBy: string | null;
  origin: ImageOrigin | null;
  sizeBytes: number | null;
  /** What the line holds; absent in metas written before lines had kinds, which were all "os". */
  kind?: LineKind;
}

const META_FILE = "meta.json";

export async function writeMeta(imageDir: string, meta: ImageMeta): Promise<void> {
  await writeFile(join(imageDir, META_FILE), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
}

/** The meta of an image dir, or null when it has none (made by hand, or by an older gild). */
export async function readMeta(imageDir: string): Promise<ImageMeta | null> {
  try {
    return JSON.parse(await readFile(join(imageDir, META_FILE), "utf8")) as ImageMeta;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
