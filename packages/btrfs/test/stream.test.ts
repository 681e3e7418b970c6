import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { type ImageStore, Pool, receive, ImageStore as Store, send } from "@gild/btrfs";
import { isGildError } from "@gild/core";
import { createLoopBtrfs, type LoopBtrfs, run, treeDigest } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { addFromDir, collect, makeSampleTree, twoVersions } from "./fixtures.js";

const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");

async function openStore(fs: LoopBtrfs, name = "pool"): Promise<ImageStore> {
  return new Store(await Pool.open(join(fs.mountPoint, name), { create: true }));
}

async function expectNothingLanded(store: ImageStore, line: string): Promise<void> {
  expect(await store.versions(line)).toEqual([]);
  expect(await readdir(store.pool.paths.staging)).toEqual([]);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a GildError ${code}`).toBeInstanceOf(Error);
  expect(isGildError(err) ? err.code : String(err)).toBe(code);
  return err as Error;
}

describeWith(["root", "btrfs", "busybox"], "send and receive between pools", () => {
  let fsA: LoopBtrfs;
  let fsB: LoopBtrfs;
  let fsC: LoopBtrfs;
  let source: ImageStore;
  let target: ImageStore;
  let empty: ImageStore;
  let scratch: string;
  let full: Buffer;
  let incremental: Buffer;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-stream-"));
    fsA = await createLoopBtrfs({ sizeMiB: 1024 });
    fsB = await createLoopBtrfs({ sizeMiB: 1024 });
    fsC = await createLoopBtrfs({ sizeMiB: 512 });
    source = await openStore(fsA);
    target = await openStore(fsB);
    empty = await openStore(fsC);
    ({ full, incremental } = await twoVersions(source, scratch));
  });

  afterAll(async () => {
    await fsA?.destroy();
    await fsB?.destroy();
    await fsC?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("receives a full stream, then an incremental one, and both trees equal their sources", async () => {
    const v1 = await source.get("img", 1);
    const v2 = await source.get("img", 2);
    const got1 = await receive(target, Readable.from([full]), {
      line: "img",
      version: 1,
      parentUuid: null,
      uuid: v1.uuid,
      sha256: sha256(full),
      sizeBytes: full.length,
    });
    expect(got1.image.receivedUuid).toBe(v1.uuid);
    expect(got1.sha256).toBe(sha256(full));
    expect(await treeDigest(target.pool.rootfsPath("img", 1))).toEqual(
      await treeDigest(source.pool.rootfsPath("img", 1)),
    );

    const got2 = await receive(target, Readable.from([incremental]), {
      line: "img",
      version: 2,
      parentUuid: v1.uuid,
      uuid: v2.uuid,
      sha256: sha256(incremental),
      sizeBytes: incremental.length,
    });
    expect(got2.image.receivedUuid).toBe(v2.uuid);
    expect(got2.image.parent).toBe(1);
    // What the catalog remembers of a received version is what reading it from disk says.
    expect(await target.get("img", 2)).toEqual(got2.image);
    expect(await new Store(target.pool).get("img", 2)).toEqual(got2.image);
    const digest = await treeDigest(target.pool.rootfsPath("img", 2));
    expect(digest).toEqual(await treeDigest(source.pool.rootfsPath("img", 2)));
    expect(digest["srv/sample/to-delete.txt"]).toBeUndefined();
    expect(digest["srv/sample/new.txt"]?.type).toBe("file");
    // Only the changed blocks travel.
    expect(incremental.length).toBeLessThan(full.length / 20);
    expect(await readdir(target.pool.paths.staging)).toEqual([]);
  });

  it("reports each piece of a Readable source once receive holds it no more, as the same object", async () => {
    const pieces: Buffer[] = [];
    for (let at = 0; at < full.length; at += 64 * 1024) pieces.push(full.subarray(at, at + 64 * 1024));
    const written: Buffer[] = [];
    await receive(empty, Readable.from(pieces), {
      line: "pieces",
      version: 1,
      onWritten: (piece) => written.push(piece),
    });
    expect(written.length).toBe(pieces.length);
    expect(written.every((piece, i) => piece === pieces[i])).toBe(true);
    await empty.remove("pieces", 1);
  });

  it("refuses an incremental stream whose parent is missing, before and inside btrfs receive", async () => {
    const v1 = await source.get("img", 1);
    await expectCode(
      receive(empty, Readable.from([incremental]), { line: "img", version: 2, parentUuid: v1.uuid }),
      "GILD_PARENT_MISSING",
    );
    await expectNothingLanded(empty, "img");
    // Without the expectation, btrfs receive itself finds no parent on this filesystem.
    await expectCode(
      receive(empty, Readable.from([incremental]), { line: "img", version: 2 }),
      "GILD_PARENT_MISSING",
    );
    await expectNothingLanded(empty, "img");
  });

  it("refuses a stream cut at 50%", async () => {
    const cut = full.subarray(0, Math.floor(full.length / 2));
    await expectCode(
      receive(empty, Readable.from([cut]), { line: "img", version: 1 }),
      "GILD_STREAM_CORRUPT",
    );
    await expectNothingLanded(empty, "img");
  });

  it("refuses a stream with one byte flipped in the middle", async () => {
    const flipped = Buffer.from(full);
    const middle = Math.floor(flipped.length / 2);
    flipped[middle] = (flipped[middle] as number) ^ 0xff;
    await expectCode(
      receive(empty, Readable.from([flipped]), { line: "img", version: 1 }),
      "GILD_STREAM_CORRUPT",
    );
    await expectNothingLanded(empty, "img");
  });

  it("refuses a whole stream whose sha256 is not the expected one", async () => {
    await expectCode(
      receive(empty, Readable.from([full]), { line: "img", version: 1, sha256: "0".repeat(64) }),
      "GILD_STREAM_HASH_MISMATCH",
    );
    await expectNothingLanded(empty, "img");
  });

  it("refuses a full stream where an incremental one was expected, and one from another subvolume", async () => {
    const v2 = await source.get("img", 2);
    await expectCode(
      receive(empty, Readable.from([full]), { line: "img", version: 1, uuid: v2.uuid }),
      "GILD_STREAM_CHECK_FAILED",
    );
    await expectNothingLanded(empty, "img");
  });

  it("confines a hostile stream whose path leaves the subvolume", async () => {
    const escapeDir = join(scratch, "escape");
    await mkdir(escapeDir);
    const hostile = rewriteTopLevelFile(full, `${"../".repeat(16)}${escapeDir.slice(1)}/escaped`);

    // The stream really is hostile: a plain `btrfs receive` (no -C) writes outside its target.
    const plainTarget = join(fsC.mountPoint, "plain-receive");
    await mkdir(plainTarget);
    const streamFile = join(scratch, "hostile.stream");
    await writeFile(streamFile, hostile);
    await run("btrfs", ["receive", "-f", streamFile, plainTarget]).catch(() => undefined);
    expect(existsSync(join(escapeDir, "escaped"))).toBe(true);
    await rm(join(escapeDir, "escaped"), { recursive: true, force: true });
    await run("btrfs", ["subvolume", "delete", join(plainTarget, "rootfs")]).catch(() => undefined);

    await expectCode(
      receive(empty, Readable.from([hostile]), { line: "img", version: 1 }),
      "GILD_STREAM_CORRUPT",
    );
    expect(existsSync(join(escapeDir, "escaped"))).toBe(false);
    expect(await readdir(escapeDir)).toEqual([]);
    await expectNothingLanded(empty, "img");
  });

  it("refuses to receive over an existing version", async () => {
    await expectCode(
      receive(target, Readable.from([full]), { line: "img", version: 1 }),
      "GILD_IMAGE_EXISTS",
    );
  });
});

describeWith(["root", "btrfs", "busybox"], "receive into a nearly full pool", () => {
  let fsSrc: LoopBtrfs;
  let fsFull: LoopBtrfs;
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gild-full-"));
    fsSrc = await createLoopBtrfs({ sizeMiB: 1024 });
    fsFull = await createLoopBtrfs({ sizeMiB: 320 });
  });

  afterAll(async () => {
    await fsSrc?.destroy();
    await fsFull?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("fails cleanly with GILD_NO_SPACE and leaves what was there unchanged", async () => {
    const source = await openStore(fsSrc);
    const small = join(scratch, "small");
    await makeSampleTree(small, { dataMiB: 1 });
    await addFromDir(source, "small", small);
    const big = join(scratch, "big");
    await makeSampleTree(big, { dataMiB: 160 });
    await addFromDir(source, "big", big);

    const store = await openStore(fsFull);
    const smallStream = await collect(send(source, "small", 1));
    await receive(store, Readable.from([smallStream]), { line: "small", version: 1 });
    const before = await treeDigest(store.pool.paths.images);

    // Leave about 60 MiB free: less than the big stream needs.
    const { freeBytes } = await store.pool.space();
    await run("fallocate", [
      "-l",
      String(Math.max(0, freeBytes - 60 * 1024 * 1024)),
      join(fsFull.mountPoint, "filler"),
    ]);

    await expectCode(receive(store, send(source, "big", 1), { line: "big", version: 1 }), "GILD_NO_SPACE");
    expect(await store.versions("big")).toEqual([]);
    expect(await readdir(store.pool.paths.staging)).toEqual([]);
    expect(await treeDigest(store.pool.paths.images)).toEqual(before);
  });
});

// --- send stream surgery, for the hostile-stream test --------------------------------------------
// v1 stream: "btrfs-stream\0", le32 version; then commands: le32 payload length, le16 command, le32 crc32c
// (raw crc32c, seed 0, over the 10-byte header with the crc zeroed plus the payload); payload = TLVs of
// le16 type, le16 length, value.
const CMD_MKFILE = 3;
const CMD_RENAME = 9;
const ATTR_PATH = 15;
const ATTR_PATH_TO = 16;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32cRaw(seed: number, data: Buffer): number {
  let crc = seed >>> 0;
  for (const byte of data) crc = (CRC_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return crc >>> 0;
}

interface StreamCommand {
  command: number;
  tlvs: Array<{ type: number; value: Buffer }>;
}

function parseStream(stream: Buffer): StreamCommand[] {
  expect(stream.subarray(0, 13).toString("latin1")).toBe("btrfs-stream\0");
  expect(stream.readUInt32LE(13)).toBe(1);
  const commands: StreamCommand[] = [];
  for (let offset = 17; offset + 10 <= stream.length; ) {
    const length = stream.readUInt32LE(offset);
    const command = stream.readUInt16LE(offset + 4);
    const payload = stream.subarray(offset + 10, offset + 10 + length);
    const tlvs: StreamCommand["tlvs"] = [];
    for (let p = 0; p < payload.length; ) {
      const len = payload.readUInt16LE(p + 2);
      tlvs.push({ type: payload.readUInt16LE(p), value: payload.subarray(p + 4, p + 4 + len) });
      p += 4 + len;
    }
    const rebuilt = serializeCommand({ command, tlvs });
    // The crc algorithm is right: re-serializing reproduces every original command byte for byte.
    expect(rebuilt.equals(stream.subarray(offset, offset + 10 + length))).toBe(true);
    commands.push({ command, tlvs });
    offset += 10 + length;
  }
  return commands;
}

function serializeCommand(cmd: StreamCommand): Buffer {
  const payload = Buffer.concat(
    cmd.tlvs.map((t) => {
      const h = Buffer.alloc(4);
      h.writeUInt16LE(t.type, 0);
      h.writeUInt16LE(t.value.length, 2);
      return Buffer.concat([h, t.value]);
    }),
  );
  const header = Buffer.alloc(10);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt16LE(cmd.command, 4);
  header.writeUInt32LE(crc32cRaw(0, Buffer.concat([header, payload])), 6);
  return Buffer.concat([header, payload]);
}

const pathOf = (cmd: StreamCommand, type: number) => cmd.tlvs.find((t) => t.type === type)?.value.toString();

/**
 * Point one top-level regular file of the stream at `newPath`: its mkfile, its rename, and every
 * later command on it, with each command's crc recomputed. A plain `btrfs receive` then writes that
 * file wherever newPath leads.
 */
function rewriteTopLevelFile(stream: Buffer, newPath: string): Buffer {
  const commands = parseStream(stream);
  const created = new Set(commands.filter((c) => c.command === CMD_MKFILE).map((c) => pathOf(c, ATTR_PATH)));
  const rename = commands.find(
    (c) =>
      c.command === CMD_RENAME &&
      created.has(pathOf(c, ATTR_PATH)) &&
      !pathOf(c, ATTR_PATH_TO)?.includes("/"),
  );
  if (!rename) throw new Error("no top-level file in the stream");
  const names = new Set([pathOf(rename, ATTR_PATH), pathOf(rename, ATTR_PATH_TO)]);
  for (const cmd of commands) {
    for (const tlv of cmd.tlvs) {
      if ((tlv.type === ATTR_PATH || tlv.type === ATTR_PATH_TO) && names.has(tlv.value.toString())) {
        tlv.value = Buffer.from(newPath);
      }
    }
  }
  return Buffer.concat([stream.subarray(0, 17), ...commands.map(serializeCommand)]);
}
