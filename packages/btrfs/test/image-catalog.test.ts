import { mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageStore, isSubvolume, Pool, send, showSubvolume } from "@gild/btrfs";
import { GildError } from "@gild/core";
import { createLoopBtrfs, type LoopBtrfs } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { addChanged, addFromDir, collect, makeSampleTree } from "./fixtures.js";

describeWith(["root", "btrfs", "busybox"], "the image catalog of a pool", () => {
  let fs: LoopBtrfs;
  let scratch: string;
  let store: ImageStore;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-images-"));
    fs = await createLoopBtrfs({ sizeMiB: 1024 });
    store = new ImageStore(await Pool.open(join(fs.mountPoint, "pool"), { create: true }));
    await makeSampleTree(join(scratch, "tree"));
  });

  afterAll(async () => {
    await fs?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("adds a read-only version filled from nothing, with its meta", async () => {
    const v1 = await addFromDir(store, "web", join(scratch, "tree"), "alice");
    expect(v1).toMatchObject({
      line: "web",
      version: 1,
      parent: null,
      createdBy: "alice",
      receivedUuid: null,
    });
    expect(v1.origin).toEqual({ kind: "dir", path: join(scratch, "tree") });
    expect(v1.sizeBytes).toBeGreaterThan(4 * 1024 * 1024);
    const info = await showSubvolume(store.pool.rootfsPath("web", 1));
    expect(info.readOnly).toBe(true);
    expect(info.uuid).toBe(v1.uuid);
  });

  it("adds the next version as a snapshot of the one it starts from, so its incremental stream is small", async () => {
    const v2 = await addChanged(store, "web", "echo patched > srv/sample/small.txt");
    expect(v2).toMatchObject({ version: 2, parent: 1 });
    expect(v2.origin).toMatchObject({ kind: "update", from: 1 });
    expect((await showSubvolume(store.pool.rootfsPath("web", 2))).parentUuid).toBe(
      (await store.get("web", 1)).uuid,
    );
    const full = await collect(send(store, "web", 2));
    const incremental = await collect(send(store, "web", 2, { parent: 1 }));
    expect(incremental.length).toBeLessThan(full.length / 50);
    expect(incremental.length).toBeLessThan(64 * 1024);
  });

  it("makes no version when the fill fails, and leaves no staging behind", async () => {
    const failure = new GildError("GILD_IMAGE_COMMAND_FAILED", "the fill failed");
    await expect(
      store.addVersion(
        "web",
        { from: 2, origin: { kind: "update", from: 2, command: ["false"] } },
        async (rootfs) => {
          await writeFile(join(rootfs, "half-made"), "x");
          throw failure;
        },
      ),
    ).rejects.toBe(failure);
    expect(await store.versions("web")).toEqual([1, 2]);
    expect(await readdir(store.pool.paths.staging)).toEqual([]);
  });

  it("lists versions with size, parent, creation time and origin", async () => {
    const list = await store.list();
    expect(list.map((i) => `${i.line}@${i.version}`)).toEqual(["web@1", "web@2"]);
    expect(list[1]?.origin).toMatchObject({ kind: "update", from: 1 });
    expect(Date.parse(list[1]?.createdAt ?? "")).toBeGreaterThan(Date.now() - 600_000);
  });

  it("refuses bad names and missing parents with coded errors", async () => {
    const fill = async () => undefined;
    await expect(
      store.addVersion("Bad_Name", { from: null, origin: { kind: "dir", path: "/x" } }, fill),
    ).rejects.toMatchObject({ code: "GILD_IMAGE_NAME_INVALID" });
    await expect(
      store.addVersion("web", { from: 9, origin: { kind: "update", from: 9, command: ["true"] } }, fill),
    ).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
    await expect(store.get("web", 9)).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
  });

  it("tells a version it cannot read from one that is not there", async () => {
    // A line whose directory is a symlink loop: reading a version below it fails with ELOOP, a fault
    // of the pool, which must reach the caller as what it is, not as "not found".
    const loop = join(store.pool.paths.images, "loopy");
    await symlink("loopy", loop);
    try {
      await expect(store.get("loopy", 1)).rejects.toMatchObject({ code: "ELOOP" });
      await expect(store.get("absent", 1)).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
    } finally {
      await rm(loop);
    }
  });

  it("removes a version", async () => {
    await store.remove("web", 2);
    expect(await store.versions("web")).toEqual([1]);
    expect(await isSubvolume(store.pool.rootfsPath("web", 2))).toBe(false);
    await expect(store.remove("web", 2)).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
  });
});
