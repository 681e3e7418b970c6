import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { ImageStore, Pool, send, showSubvolume } from "@gild/btrfs";
import { isGildError } from "@gild/core";
import { ImageBuilder } from "@gild/runtime";
import { buildBusyboxRoot, createLoopBtrfs, type LoopBtrfs } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describeWith(["root", "btrfs", "nspawn", "busybox"], "image builds", () => {
  let fs: LoopBtrfs;
  let scratch: string;
  let store: ImageStore;
  let builder: ImageBuilder;
  let tree: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-image-build-"));
    fs = await createLoopBtrfs({ sizeMiB: 1024 });
    store = new ImageStore(await Pool.open(join(fs.mountPoint, "pool"), { create: true }));
    builder = new ImageBuilder(store);
    tree = join(scratch, "tree");
    await buildBusyboxRoot(tree, { marker: "build v1" });
    await mkdir(join(tree, "srv", "sample"), { recursive: true });
    await writeFile(join(tree, "srv", "sample", "big.bin"), randomBytes(4 * 1024 * 1024));
    await writeFile(join(tree, "srv", "sample", "small.txt"), "small file\n");
  });

  afterAll(async () => {
    await fs?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("creates a read-only version from a directory", async () => {
    const v1 = await builder.createFromDir("web", tree, { createdBy: "alice" });
    expect(v1).toMatchObject({ line: "web", version: 1, parent: null, createdBy: "alice" });
    expect(v1.origin).toEqual({ kind: "dir", path: tree });
    expect((await showSubvolume(store.pool.rootfsPath("web", 1))).readOnly).toBe(true);
    expect(await readFile(join(store.pool.rootfsPath("web", 1), "srv/sample/small.txt"), "utf8")).toBe(
      "small file\n",
    );
  });

  it("updates with a command run in a container on the previous version, with its environment", async () => {
    const lines: string[] = [];
    const command = ["/bin/sh", "-c", 'echo "patched by $WHO" > /srv/sample/small.txt; echo done-$WHO'];
    const v2 = await builder.update("web", command, {
      createdBy: "bob",
      env: { WHO: "builder" },
      onOutput: (line) => lines.push(line),
    });
    expect(v2).toMatchObject({ version: 2, parent: 1, createdBy: "bob" });
    expect(v2.origin).toEqual({ kind: "update", from: 1, command });
    expect(lines).toContain("done-builder");
    const rootfs = store.pool.rootfsPath("web", 2);
    expect(await readFile(join(rootfs, "srv/sample/small.txt"), "utf8")).toBe("patched by builder\n");
    expect((await showSubvolume(rootfs)).parentUuid).toBe((await store.get("web", 1)).uuid);
    const full = await collect(send(store, "web", 2));
    const incremental = await collect(send(store, "web", 2, { parent: 1 }));
    expect(incremental.length).toBeLessThan(full.length / 50);
  });

  it("makes no version when the update command fails", async () => {
    const err = await builder
      .update("web", ["/bin/sh", "-c", "echo about to fail; exit 7"])
      .catch((e: unknown) => e);
    expect(isGildError(err, "GILD_IMAGE_COMMAND_FAILED")).toBe(true);
    expect((err as Error).message).toContain("exit code 7");
    expect(await store.versions("web")).toEqual([1, 2]);
    expect(await readdir(store.pool.paths.staging)).toEqual([]);
  });

  it("refuses bad names, missing sources, bad suites and lines with nothing to update, with coded errors", async () => {
    await expect(builder.createFromDir("Bad_Name", tree)).rejects.toMatchObject({
      code: "GILD_IMAGE_NAME_INVALID",
    });
    await expect(builder.createFromDir("web", join(scratch, "missing"))).rejects.toMatchObject({
      code: "GILD_IMAGE_SOURCE_INVALID",
    });
    await expect(builder.createFromDebootstrap("deb", { suite: "Bookworm;rm" })).rejects.toMatchObject({
      code: "GILD_IMAGE_SOURCE_INVALID",
    });
    await expect(
      builder.createFromDebootstrap("deb", { suite: "bookworm", include: ["php; rm -rf /"] }),
    ).rejects.toMatchObject({ code: "GILD_IMAGE_SOURCE_INVALID" });
    await expect(builder.update("nothing", ["true"])).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
    await expect(builder.update("web", [])).rejects.toMatchObject({ code: "GILD_BAD_REQUEST" });
    expect(await store.versions("web")).toEqual([1, 2]);
  });
});
