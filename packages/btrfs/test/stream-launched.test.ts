import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { ImageStore, Pool, receive, SpawnHelper, send, type ToolLauncher } from "@gild/btrfs";
import { isGildError, silentLogger } from "@gild/core";
import { createLoopBtrfs, descendantProcesses, type LoopBtrfs, treeDigest, waitFor } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { addChanged, collect, twoVersions } from "./fixtures.js";

const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");

// The agent's pool starts its programs from a spawn helper (docs/architecture.md, The spawn helper):
// the same receive, checks and errors as when the pool spawns them itself (stream.test.ts).
describeWith(["root", "btrfs", "busybox"], "receive through a spawn helper", () => {
  let fsA: LoopBtrfs;
  let fsB: LoopBtrfs;
  let source: ImageStore;
  let target: ImageStore;
  let helper: SpawnHelper;
  let scratch: string;
  let full: Buffer;
  let incremental: Buffer;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-launched-"));
    fsA = await createLoopBtrfs({ sizeMiB: 512 });
    fsB = await createLoopBtrfs({ sizeMiB: 512 });
    helper = new SpawnHelper({ socketDir: join(scratch, "sockets"), log: silentLogger });
    source = new ImageStore(await Pool.open(join(fsA.mountPoint, "pool"), { create: true }));
    target = new ImageStore(
      await Pool.open(join(fsB.mountPoint, "pool"), { create: true, launcher: helper }),
    );
    ({ full, incremental } = await twoVersions(source, scratch));
  });

  afterAll(async () => {
    helper?.close();
    await fsA?.destroy();
    await fsB?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("receives, checks, reads back and removes versions through the helper", async () => {
    const v1 = await source.get("img", 1);
    const v2 = await source.get("img", 2);
    await receive(target, Readable.from([full]), {
      line: "img",
      version: 1,
      uuid: v1.uuid,
      sha256: sha256(full),
    });
    const got2 = await receive(target, Readable.from([incremental]), {
      line: "img",
      version: 2,
      parentUuid: v1.uuid,
      uuid: v2.uuid,
      sha256: sha256(incremental),
      sizeBytes: incremental.length,
    });
    expect(got2.image.receivedUuid).toBe(v2.uuid);
    expect(await treeDigest(target.pool.rootfsPath("img", 2))).toEqual(
      await treeDigest(source.pool.rootfsPath("img", 2)),
    );
    // A fresh catalog reads the version with `btrfs subvolume show`, from the helper too.
    expect(await new ImageStore(target.pool).get("img", 2)).toEqual(got2.image);
    await target.remove("img", 2);
    expect(await target.versions("img")).toEqual([1]);
    expect(await readdir(target.pool.paths.staging)).toEqual([]);
  });

  it("refuses a damaged stream with the code it has without the helper", async () => {
    const bad = Buffer.from(incremental);
    bad[Math.floor(bad.length / 2)] = (bad[Math.floor(bad.length / 2)] as number) ^ 0xff;
    const err = await receive(target, Readable.from([bad]), {
      line: "img",
      version: 2,
      parentUuid: (await source.get("img", 1)).uuid,
      sha256: sha256(incremental),
    }).catch((e: unknown) => e);
    expect(isGildError(err) ? err.code : err).toMatch(/^GILD_STREAM_(CORRUPT|HASH_MISMATCH)$/);
    expect(await target.versions("img")).toEqual([1]);
    expect(await readdir(target.pool.paths.staging)).toEqual([]);
  });

  it("stops a receive through the helper when it is cancelled", async () => {
    const feed = new PassThrough();
    const cancel = new AbortController();
    const receiving = receive(target, feed, {
      line: "img",
      version: 2,
      parentUuid: (await source.get("img", 1)).uuid,
      cancelSignal: cancel.signal,
      // The first half is in the receive's socket: the caller gives up.
      onWritten: () => cancel.abort(),
    });
    feed.write(incremental.subarray(0, Math.floor(incremental.length / 2)));
    const err = await receiving.catch((e: unknown) => e);
    feed.destroy();
    expect(isGildError(err) ? err.code : err).toBe("GILD_TRANSFER_FAILED");
    expect((err as Error).message).toContain("cancelled");
    expect(await target.versions("img")).toEqual([1]);
    expect(await readdir(target.pool.paths.staging)).toEqual([]);
  });

  it("fails a receive whose helper died as a transfer to retry, and leaves nothing behind", async () => {
    const feed = new PassThrough();
    const half = Math.floor(incremental.length / 2);
    let killed = false;
    const receiving = receive(target, feed, {
      line: "img",
      version: 2,
      parentUuid: (await source.get("img", 1)).uuid,
      onWritten: () => {
        // The first half is in the receive's socket: the helper goes (setpriv takes its receive along).
        if (killed) return;
        killed = true;
        process.kill(helper.helperPid as number, "SIGKILL");
      },
    });
    feed.write(incremental.subarray(0, half));
    const err = await receiving.catch((e: unknown) => e);
    feed.destroy();
    expect(isGildError(err) ? err.code : err).toBe("GILD_TRANSFER_FAILED");
    expect(await target.versions("img")).toEqual([1]);
    expect(await readdir(target.pool.paths.staging)).toEqual([]);
    // The next program starts in a new helper.
    await receive(target, Readable.from([incremental]), { line: "img", version: 2 });
    expect(await target.versions("img")).toEqual([1, 2]);
  });
});

// The controller's pool sends every artifact through its helper: the send's stdout is a socket the
// controller reads.
describeWith(["root", "btrfs", "busybox"], "send through a spawn helper", () => {
  let fsA: LoopBtrfs;
  let fsB: LoopBtrfs;
  let source: ImageStore;
  let target: ImageStore;
  let helper: SpawnHelper;
  let scratch: string;
  let full: Buffer;
  let incremental: Buffer;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-launched-send-"));
    fsA = await createLoopBtrfs({ sizeMiB: 512 });
    fsB = await createLoopBtrfs({ sizeMiB: 512 });
    helper = new SpawnHelper({ socketDir: join(scratch, "sockets"), log: silentLogger });
    const made = new ImageStore(await Pool.open(join(fsA.mountPoint, "pool"), { create: true }));
    // The streams this process sends itself, to compare with.
    ({ full, incremental } = await twoVersions(made, scratch));
    source = new ImageStore(await Pool.open(join(fsA.mountPoint, "pool"), { launcher: helper }));
    target = new ImageStore(await Pool.open(join(fsB.mountPoint, "pool"), { create: true }));
  });

  afterAll(async () => {
    helper?.close();
    await fsA?.destroy();
    await fsB?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("sends full and incremental streams that receive into the same trees", async () => {
    const sentFull = await collect(send(source, "img", 1));
    const sentIncremental = await collect(send(source, "img", 2, { parent: 1 }));
    expect(sentFull.length).toBe(full.length);
    expect(sentIncremental.length).toBe(incremental.length);
    await receive(target, Readable.from([sentFull]), { line: "img", version: 1 });
    await receive(target, Readable.from([sentIncremental]), {
      line: "img",
      version: 2,
      parentUuid: (await source.get("img", 1)).uuid,
    });
    for (const v of [1, 2])
      expect(await treeDigest(target.pool.rootfsPath("img", v))).toEqual(
        await treeDigest(source.pool.rootfsPath("img", v)),
      );
  });

  it("builds a version with the pool's launcher: snapshot, read-only flag and size", async () => {
    const started: string[] = [];
    const counting: ToolLauncher = {
      start: (file, args, options) => {
        started.push([file, ...args.slice(0, 2)].join(" "));
        return helper.start(file, args, options);
      },
    };
    const store = new ImageStore(await Pool.open(join(fsA.mountPoint, "pool"), { launcher: counting }));
    const built = await addChanged(store, "img", "echo three > srv/sample/three.txt");
    expect(built.version).toBe(3);
    expect(built.parent).toBe(2);
    expect(built.sizeBytes).toBeGreaterThan(0);
    expect(started).toEqual(
      expect.arrayContaining([
        "btrfs subvolume snapshot",
        "btrfs property set",
        "btrfs filesystem sync",
        "btrfs filesystem du",
      ]),
    );
    await store.remove("img", 3);
  });

  it("fails a send btrfs refuses with a coded error, never a stream that ends whole", async () => {
    // Version 1 is no parent of itself in a way btrfs takes: send -p of a path that is not there.
    const err = await collect(send(source, "img", 2, { parent: 9 })).catch((e: unknown) => e);
    expect(isGildError(err) ? err.code : err).toBe("GILD_BTRFS_FAILED");
    expect((err as Error).message).toContain("btrfs send");
  });

  it("stops the send when its reader goes away, and when it is cancelled", async () => {
    const pid = helper.helperPid as number;
    const reader = send(source, "img", 1);
    await new Promise((resolve) => reader.once("readable", resolve));
    reader.destroy();
    await waitFor(() => descendantProcesses(pid, ["btrfs"]).length === 0, { timeoutMs: 10_000 });

    const cancel = new AbortController();
    const cancelled = send(source, "img", 1, { cancelSignal: cancel.signal });
    await new Promise((resolve) => cancelled.once("readable", resolve));
    cancel.abort();
    const err = await collect(cancelled).catch((e: unknown) => e);
    expect(isGildError(err) ? err.code : err).toBe("GILD_BTRFS_FAILED");
    expect((err as Error).message).toContain("cancelled");
    await waitFor(() => descendantProcesses(pid, ["btrfs"]).length === 0, { timeoutMs: 10_000 });
  });
});
