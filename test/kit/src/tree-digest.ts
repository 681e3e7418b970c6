import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { run } from "./host-commands.js";

/** What is compared of one entry of a tree: type, mode, owner, size, content hash or link target, xattrs. */
export interface EntryDigest {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  target?: string;
  xattrs: Record<string, string>;
  /** Number of hard links (files), so hard links are compared too. */
  nlink?: number;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Every xattr under root, by relative path, from one `getfattr -R` run. */
async function readXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const { stdout } = await run("getfattr", [
    "-R",
    "-h",
    "-d",
    "-m",
    "-",
    "-e",
    "hex",
    "--absolute-names",
    root,
  ]);
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      current = {};
      out.set(relative(root, line.slice("# file: ".length)) || ".", current);
    } else if (current && line.includes("=")) {
      const eq = line.indexOf("=");
      current[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return out;
}

/**
 * A comparable digest of a directory tree: modes, owners, xattrs and file hashes of every entry, by
 * path relative to root. Two trees are equal when their digests are deeply equal.
 */
export async function treeDigest(root: string): Promise<Record<string, EntryDigest>> {
  const xattrs = await readXattrs(root);
  const out: Record<string, EntryDigest> = {};
  async function visit(path: string): Promise<void> {
    const stat = await lstat(path);
    const rel = relative(root, path) || ".";
    const base = {
      mode: stat.mode,
      uid: stat.uid,
      gid: stat.gid,
      xattrs: xattrs.get(rel) ?? {},
    };
    if (stat.isSymbolicLink()) {
      out[rel] = { ...base, type: "symlink", size: stat.size, target: await readlink(path) };
    } else if (stat.isDirectory()) {
      out[rel] = { ...base, type: "dir", size: 0 };
      for (const name of (await readdir(path)).sort()) await visit(join(path, name));
    } else if (stat.isFile()) {
      out[rel] = { ...base, type: "file", size: stat.size, sha256: await hashFile(path), nlink: stat.nlink };
    } else {
      out[rel] = { ...base, type: "other", size: 0 };
    }
  }
  await visit(root);
  return out;
}
