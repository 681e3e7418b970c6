import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageStore, isSubvolume, Pool, send, showSubvolume } from "@gild/btrfs";
import { isGildError } from "@gild/core";
import { createLoopBtrfs, type LoopBtrfs } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { collect, makeSampleTree } from "./fixtures.js";

describeWith(["root", "btrfs", "nspawn", "busybox"], "image versions on a pool", () => {
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

  it("creates a read-only version from a directory, with its meta", async () => {
    const v1 = await store.createFromDir("web", join(scratch, "tree"), { createdBy: "alice" });
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

  it("makes an update whose incremental stream is small, from a command run in a container", async () => {
    const v2 = await store.update("web", ["/bin/sh", "-c", "echo patched > /srv/sample/small.txt"], {
      createdBy: "bob",
    });
    expect(v2).toMatchObject({ version: 2, parent: 1, createdBy: "bob" });
    expect(v2.origin).toEqual({
      kind: "update",
      from: 1,
      command: ["/bin/sh", "-c", "echo patched > /srv/sample/small.txt"],
    });
    // v2 is a snapshot of v1, not a copy.
    expect((await showSubvolume(store.pool.rootfsPath("web", 2))).parentUuid).toBe(
      (await store.get("web", 1)).uuid,
    );
    const full = await collect(send(store, "web", 2));
    const incremental = await collect(send(store, "web", 2, { parent: 1 }));
    expect(incremental.length).toBeLessThan(full.length / 50);
    expect(incremental.length).toBeLessThan(64 * 1024);
  });

  it("makes no version when the update command fails", async () => {
    const err = await store
      .update("web", ["/bin/sh", "-c", "echo about to fail; exit 7"])
      .catch((e: unknown) => e);
    expect(isGildError(err, "GILD_IMAGE_COMMAND_FAILED")).toBe(true);
    expect((err as Error).message).toContain("exit code 7");
    expect(await store.versions("web")).toEqual([1, 2]);
    expect(await readdir(store.pool.paths.staging)).toEqual([]);
  });

  it("lists versions with size, parent, creation time and command", async () => {
    const list = await store.list();
    expect(list.map((i) => `${i.line}@${i.version}`)).toEqual(["web@1", "web@2"]);
    expect(list[1]?.origin).toMatchObject({ kind: "update", from: 1 });
    expect(Date.parse(list[1]?.createdAt ?? "")).toBeGreaterThan(Date.now() - 600_000);
  });

  it("refuses bad names and missing sources with coded errors", async () => {
    await expect(store.createFromDir("Bad_Name", join(scratch, "tree"))).rejects.toMatchObject({
      code: "GILD_IMAGE_NAME_INVALID",
    });
    await expect(store.createFromDir("web", join(scratch, "missing"))).rejects.toMatchObject({
      code: "GILD_IMAGE_SOURCE_INVALID",
    });
    await expect(store.update("nothing", ["true"])).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
    await expect(store.get("web", 9)).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
  });

  it("removes a version", async () => {
    await store.remove("web", 2);
    expect(await store.versions("web")).toEqual([1]);
    expect(await isSubvolume(store.pool.rootfsPath("web", 2))).toBe(false);
    await expect(store.remove("web", 2)).rejects.toMatchObject({ code: "GILD_IMAGE_NOT_FOUND" });
  });
});
