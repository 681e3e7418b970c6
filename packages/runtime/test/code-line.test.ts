import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ImageStore, Pool, showSubvolume } from "@gild/btrfs";
import { ImageBuilder } from "@gild/runtime";
import { createLoopBtrfs, type LoopBtrfs, run, treeDigest } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

async function streamLength(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

/**
 * An app's code: 2000 files of 11 000 random bytes in 40 dirs (about 21 MiB), and a small config file.
 * Its directories were last read long ago, like a real checkout's: reading them again in the new
 * version's snapshot would move their atimes, and put a utimes command per directory in the delta.
 */
async function makeCodeTree(dir: string): Promise<void> {
  const longAgo = new Date("2020-01-01T00:00:00Z");
  const dirs = [dir, join(dir, "src")];
  for (let d = 0; d < 40; d++) {
    const sub = join(dir, "src", `module-${d}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < 50; f++) await writeFile(join(sub, `file-${f}.php`), randomBytes(11_000));
    dirs.push(sub);
  }
  await writeFile(join(dir, "config.php"), "<?php return ['version' => 1];\n");
  for (const d of dirs.reverse()) await utimes(d, longAgo, (await stat(d)).mtime);
}

/** The commands of a send stream, by name, from `btrfs receive --dump`. */
async function streamCommands(stream: Readable, file: string): Promise<string[]> {
  await pipeline(stream, createWriteStream(file));
  const { stdout } = await run("btrfs", ["receive", "--dump", "-f", file]);
  return stdout
    .split("\n")
    .map((line) => line.split(/\s+/)[0] ?? "")
    .filter((name) => name !== "");
}

describeWith(["root", "btrfs"], "code lines", () => {
  let fs: LoopBtrfs;
  let scratch: string;
  let store: ImageStore;
  let builder: ImageBuilder;
  let code: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-code-line-"));
    fs = await createLoopBtrfs({ sizeMiB: 1024 });
    store = new ImageStore(await Pool.open(join(fs.mountPoint, "pool"), { create: true }));
    builder = new ImageBuilder(store);
    code = join(scratch, "code");
    await makeCodeTree(code);
  });

  afterAll(async () => {
    await fs?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("makes the first version of a code line as a copy, and says it is code", async () => {
    const v1 = await builder.createFromDir("blog", code, { kind: "code", createdBy: "alice" });
    expect(v1).toMatchObject({ line: "blog", version: 1, kind: "code", parent: null, createdBy: "alice" });
    expect(await treeDigest(store.pool.rootfsPath("blog", 1))).toEqual(await treeDigest(code));
  });

  it("makes the next version from the latest, so a one-file change ships as a tiny delta", async () => {
    await writeFile(join(code, "config.php"), "<?php return ['version' => 2];\n");
    const output: string[] = [];
    const v2 = await builder.createFromDir("blog", code, { kind: "code", onOutput: (l) => output.push(l) });
    expect(v2).toMatchObject({ version: 2, kind: "code", parent: 1, origin: { kind: "dir", path: code } });
    expect(output).toEqual(["synced: 1 file written (31 B), 0 removed, 0 metadata updated"]);
    expect((await showSubvolume(store.pool.rootfsPath("blog", 2))).parentUuid).toBe(
      (await store.get("blog", 1)).uuid,
    );
    expect(await treeDigest(store.pool.rootfsPath("blog", 2))).toEqual(await treeDigest(code));
    expect(await readFile(join(store.pool.rootfsPath("blog", 1), "config.php"), "utf8")).toContain("=> 1");

    const incremental = await streamLength(store.sendStream("blog", 2, { parent: 1 }));
    const full = await streamLength(store.sendStream("blog", 2));
    expect(incremental).toBeLessThan(64 * 1024);
    expect(full).toBeGreaterThan(20 * 1024 * 1024);
    // The changed file's data and times, and no directory's times.
    const commands = await streamCommands(store.sendStream("blog", 2, { parent: 1 }), join(scratch, "delta"));
    expect(commands.filter((c) => c === "utimes").length).toBeLessThanOrEqual(1);
    expect(commands.filter((c) => c === "write")).toEqual(["write"]);
  });

  it("keeps a line to one kind, refused before anything is made", async () => {
    const web = await builder.createFromDir("web", code);
    expect(web).toMatchObject({ line: "web", version: 1, kind: "os" });

    await expect(builder.createFromDir("blog", code)).rejects.toMatchObject({
      code: "GILD_LINE_KIND_MISMATCH",
      message: "blog is a code line, not an os image line",
      hint: expect.stringContaining("gild code update blog --from-dir DIR"),
    });
    await expect(builder.update("blog", ["true"])).rejects.toMatchObject({ code: "GILD_LINE_KIND_MISMATCH" });
    await expect(builder.createFromDir("web", code, { kind: "code" })).rejects.toMatchObject({
      code: "GILD_LINE_KIND_MISMATCH",
      message: "web is an os image line, not a code line",
      hint: expect.stringContaining("gild image"),
    });

    expect(await store.versions("blog")).toEqual([1, 2]);
    expect(await store.versions("web")).toEqual([1]);
    expect(await readdir(store.pool.paths.images)).toEqual(["blog", "web"]);
    expect(await readdir(store.pool.paths.staging)).toEqual([]);
  });

  it("takes a version whose meta has no kind (made before lines had kinds) as os", async () => {
    const metaFile = join(store.pool.imageDir("web", 1), "meta.json");
    const { kind: _kind, ...old } = JSON.parse(await readFile(metaFile, "utf8")) as Record<string, unknown>;
    await writeFile(metaFile, JSON.stringify(old));
    // A fresh store: the first one cached what it read of web@1.
    const fresh = new ImageStore(store.pool);
    expect((await fresh.get("web", 1)).kind).toBe("os");
    expect((await fresh.get("blog", 2)).kind).toBe("code");
  });
});
