import { createHash } from "node:crypto";
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isGildError } from "@gild/core";
import { syncTree } from "@gild/runtime";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/** Each entry of a tree as the sync must make it: type, mode, owner, mtime (µs), contents or link. */
async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    const st = await lstat(dir, { bigint: true });
    out[rel || "."] = describeEntry(st, "dir");
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const entry = await lstat(path, { bigint: true });
      if (entry.isDirectory()) await walk(path, relPath);
      else if (entry.isSymbolicLink())
        out[relPath] =
          `symlink -> ${await readlink(path)} ${entry.uid}:${entry.gid} ${entry.mtimeNs / 1000n}`;
      else
        out[relPath] = `${describeEntry(entry, "file")} ${createHash("sha256")
          .update(await readFile(path))
          .digest("hex")
          .slice(0, 16)}`;
    }
  };
  await walk(root, "");
  return out;
}

function describeEntry(st: import("node:fs").BigIntStats, type: string): string {
  return `${type} ${(st.mode & 0o7777n).toString(8)} ${st.uid}:${st.gid} ${st.mtimeNs / 1000n}`;
}

const zero = { filesWritten: 0, entriesRemoved: 0, metadataUpdated: 0, bytesWritten: 0 };
const past = new Date("2024-01-02T03:04:05.678Z");

describe("syncTree", () => {
  let scratch: string;
  let src: string;
  let dst: string;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-tree-sync-"));
    src = join(scratch, "src");
    dst = join(scratch, "dst");
    await mkdir(join(src, "lib", "deep"), { recursive: true });
    await mkdir(dst);
    await writeFile(join(src, "index.php"), "<?php echo 'v1';\n");
    await writeFile(join(src, "lib", "a.php"), "a".repeat(1000));
    await writeFile(join(src, "lib", "deep", "b.php"), "b");
    await writeFile(join(src, "run.sh"), "#!/bin/sh\n");
    await chmod(join(src, "run.sh"), 0o755);
    await writeFile(join(src, "secret.ini"), "key=1\n");
    await chmod(join(src, "secret.ini"), 0o600);
    await symlink("lib/a.php", join(src, "a-link"));
    await mkdir(join(src, "ro-dir"));
    await writeFile(join(src, "ro-dir", "c.txt"), "c");
    await chmod(join(src, "ro-dir"), 0o555);
    // Times from the past, so any later change in a test moves them (file times have a clock tick's
    // granularity: a change in the same tick would not).
    for (const path of ["lib/a.php", "lib/deep", "lib", "ro-dir", "."])
      await utimes(join(src, path), past, past);
    // The first sync (into an empty target) is what the rest start from.
    expect(await syncTree(src, dst)).toEqual({
      filesWritten: 10, // 6 files, 1 symlink, 3 directories made
      entriesRemoved: 0,
      metadataUpdated: 1, // the target's root: its mode and mtime
      bytesWritten: 17 + 1000 + 1 + 10 + 6 + 1,
    });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  afterEach(async () => {
    // Read-only dirs in both trees: make them removable for a non-root run.
    for (const tree of [src, dst, join(scratch, "base")]) {
      await chmod(join(tree, "ro-dir"), 0o755).catch(() => undefined);
    }
    await rm(scratch, { recursive: true, force: true });
  });

  it("writes nothing when the trees are already equal", async () => {
    expect(await syncTree(src, dst)).toEqual(zero);
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("rewrites a file of the same size whose contents changed, and only it", async () => {
    const before = await stat(join(dst, "lib", "a.php"));
    await writeFile(join(src, "lib", "a.php"), `${"a".repeat(999)}z`);
    expect(await syncTree(src, dst)).toEqual({ ...zero, filesWritten: 1, bytesWritten: 1000 });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
    // In place: the same inode, so a send stream says "write", not "unlink and create".
    expect((await stat(join(dst, "lib", "a.php"))).ino).toBe(before.ino);
  });

  it("only sets the times of a file whose contents match but whose mtime differs", async () => {
    const later = new Date("2025-05-06T07:08:09.123Z");
    await utimes(join(src, "lib", "a.php"), later, later);
    expect(await syncTree(src, dst)).toEqual({ ...zero, metadataUpdated: 1 });
    expect((await stat(join(dst, "lib", "a.php"))).mtime.toISOString()).toBe(later.toISOString());
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("only sets the mode of a file whose mode changed", async () => {
    await chmod(join(src, "secret.ini"), 0o640);
    await chmod(join(src, "run.sh"), 0o4755);
    expect(await syncTree(src, dst)).toEqual({ ...zero, metadataUpdated: 2 });
    expect((await stat(join(dst, "run.sh"))).mode & 0o7777).toBe(0o4755);
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("adds new files and nested directories, and removes what the source no longer has", async () => {
    await mkdir(join(src, "new", "nested"), { recursive: true });
    await writeFile(join(src, "new", "nested", "n.php"), "new!");
    await rm(join(src, "lib", "deep"), { recursive: true });
    await rm(join(src, "index.php"));
    const stats = await syncTree(src, dst);
    // new, new/nested, n.php written; lib/deep (one entry, with its file) and index.php removed; src's
    // root and lib changed mtime when their entries came and went.
    expect(stats).toEqual({ filesWritten: 3, entriesRemoved: 2, metadataUpdated: 2, bytesWritten: 4 });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("replaces an entry whose type changed, and a symlink whose target changed", async () => {
    await rm(join(src, "lib", "deep"), { recursive: true });
    await writeFile(join(src, "lib", "deep"), "now a file"); // dir -> file
    await rm(join(src, "index.php"));
    await mkdir(join(src, "index.php")); // file -> dir
    await rm(join(src, "run.sh"));
    await symlink("index.php", join(src, "run.sh")); // file -> symlink
    await rm(join(src, "a-link"));
    await symlink("lib/deep", join(src, "a-link")); // another target
    const stats = await syncTree(src, dst);
    expect(stats).toMatchObject({ filesWritten: 4, entriesRemoved: 3, bytesWritten: 10 });
    expect(await readlink(join(dst, "a-link"))).toBe("lib/deep");
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("writes into a read-only directory and keeps its mode", async () => {
    await chmod(join(src, "ro-dir"), 0o755);
    await writeFile(join(src, "ro-dir", "c.txt"), "changed");
    await chmod(join(src, "ro-dir"), 0o555);
    expect(await syncTree(src, dst)).toMatchObject({ filesWritten: 1, bytesWritten: 7 });
    expect((await stat(join(dst, "ro-dir"))).mode & 0o7777).toBe(0o555);
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("gives a hard-linked file of the target its own inode before changing it", async () => {
    // A version made with `cp -a` keeps the source's hard links; the next source may have broken one.
    await link(join(dst, "lib", "deep", "b.php"), join(dst, "lib", "deep", "b-twin.php"));
    await writeFile(join(src, "lib", "deep", "b-twin.php"), "b");
    await writeFile(join(src, "lib", "deep", "b.php"), "B");
    const times = await stat(join(dst, "lib", "deep", "b-twin.php"));
    await utimes(join(src, "lib", "deep", "b-twin.php"), times.atime, times.mtime);
    await syncTree(src, dst);
    expect(await readFile(join(dst, "lib", "deep", "b-twin.php"), "utf8")).toBe("b");
    expect(await readFile(join(dst, "lib", "deep", "b.php"), "utf8")).toBe("B");
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("lists and reads a base tree equal to the target instead of the target, when given one", async () => {
    const base = join(scratch, "base");
    await mkdir(base);
    await syncTree(dst, base);
    await writeFile(join(src, "lib", "a.php"), `${"a".repeat(999)}z`);
    await rm(join(src, "lib", "deep"), { recursive: true });
    await rm(join(src, "a-link"));
    await symlink("index.php", join(src, "a-link"));
    expect(await syncTree(src, dst, { base })).toMatchObject({
      filesWritten: 2,
      entriesRemoved: 1,
      bytesWritten: 1000,
    });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it("refuses a source with a socket, naming its path", async () => {
    const path = join(src, "lib", "php.sock");
    const server: Server = createServer();
    await new Promise<void>((done) => server.listen(path, done));
    try {
      const err = await syncTree(src, dst).catch((e: unknown) => e);
      expect(isGildError(err) && err.code).toBe("GILD_IMAGE_SOURCE_INVALID");
      expect((err as Error).message).toContain(path);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});
