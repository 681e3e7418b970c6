import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSubvolume, isSubvolume, Pool } from "@gild/btrfs";
import { createLoopBtrfs, type LoopBtrfs } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

describeWith(["root", "btrfs"], "pool", () => {
  let fs: LoopBtrfs;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-pool-"));
    fs = await createLoopBtrfs({ sizeMiB: 256 });
  });

  afterAll(async () => {
    await fs?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("refuses a path that is not on btrfs, and a missing one", async () => {
    await expect(Pool.open(scratch)).rejects.toMatchObject({ code: "GILD_NOT_BTRFS" });
    await expect(Pool.open(join(fs.mountPoint, "missing"))).rejects.toMatchObject({
      code: "GILD_POOL_INVALID",
    });
  });

  it("lays out images, apps, data, .staging (0700) and .spool", async () => {
    const pool = await Pool.open(join(fs.mountPoint, "pool"), { create: true });
    expect((await readdir(pool.root)).sort()).toEqual([".spool", ".staging", "apps", "data", "images"]);
    expect((await stat(pool.paths.staging)).mode & 0o777).toBe(0o700);
    expect(pool.rootfsPath("php", 3)).toBe(join(pool.root, "images", "php", "3", "rootfs"));
  });

  it("removes trees with subvolumes inside the pool, and refuses anything outside", async () => {
    const pool = await Pool.open(join(fs.mountPoint, "pool"));
    const app = join(pool.paths.apps, "blog");
    await mkdir(app, { recursive: true });
    await createSubvolume(join(app, "1"));
    await createSubvolume(join(app, "1", "nested"));
    await writeFile(join(app, "1", "nested", "file"), "x");
    await pool.removeTree(app);
    expect(await readdir(pool.paths.apps)).toEqual([]);

    const outside = join(scratch, "precious");
    await writeFile(outside, "keep me");
    await expect(pool.removeTree(outside)).rejects.toMatchObject({ code: "GILD_PATH_OUTSIDE_POOL" });
    await expect(pool.removeTree(pool.root)).rejects.toMatchObject({ code: "GILD_PATH_OUTSIDE_POOL" });
    await expect(pool.removeTree(join(pool.paths.apps, "..", ".."))).rejects.toMatchObject({
      code: "GILD_PATH_OUTSIDE_POOL",
    });
    await symlink(scratch, join(pool.paths.data, "escape"));
    await expect(pool.removeTree(join(pool.paths.data, "escape"))).rejects.toMatchObject({
      code: "GILD_PATH_OUTSIDE_POOL",
    });
    expect((await stat(outside)).isFile()).toBe(true);
  });

  it("sweeps leftovers of dead operations from .staging at open, and keeps live ones", async () => {
    const pool = await Pool.open(join(fs.mountPoint, "pool"));
    const dead = join(pool.paths.staging, "999999999.1.recv-php-1.deadbeef");
    await mkdir(dead);
    await createSubvolume(join(dead, "rootfs"));
    const live = await pool.newStagingDir("build-live");
    await Pool.open(pool.root);
    expect(await isSubvolume(join(dead, "rootfs"))).toBe(false);
    expect(await readdir(pool.paths.staging)).toEqual([live.split("/").at(-1)]);
    await pool.removeTree(live);
  });
});
