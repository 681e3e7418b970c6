import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GildError } from "@gild/core";
import { chunkCount, chunkSizeFor, decodeManifest, encodeManifest } from "@gild/protocol";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestController, type TestController } from "./support.js";

describeWith(["root", "btrfs"], "artifact chunk digests", () => {
  let c: TestController;

  beforeAll(async () => {
    c = await startTestController();
    const tree = join(c.fs.dir, "tree");
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, "payload.bin"), randomBytes(9 * 1024 * 1024 + 4321));
    await c.controller.services.imageBuilder.createFromDir("t", tree);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("signs a sha256 for every chunk of the stream, in chunks of chunkSizeFor(size)", async () => {
    const artifact = await c.controller.services.artifacts.ensure("t", 1, null, 1);
    const manifest = decodeManifest(artifact.manifest);
    const file = readFileSync(c.controller.services.artifacts.filePath(artifact.id));
    const chunkSize = chunkSizeFor(file.length);
    expect(manifest.chunkSize).toBe(chunkSize);
    expect(manifest.chunkSha256?.length).toBe(chunkCount(file.length, chunkSize));
    expect(manifest.chunkSha256?.length).toBeGreaterThan(2);
    manifest.chunkSha256?.forEach((digest, i) => {
      const piece = file.subarray(i * chunkSize, (i + 1) * chunkSize);
      expect(Buffer.from(digest).toString("hex"), `chunk ${i}`).toBe(
        createHash("sha256").update(piece).digest("hex"),
      );
    });
  });

  it("trusts a file found whole for a while, and looks again once a pull failed", async () => {
    const { artifacts, commands } = c.controller.services;
    const first = await artifacts.ensure("t", 1, null, 1);
    const file = artifacts.filePath(first.id);
    await rm(file);
    // Found whole a moment ago: not looked at again (a wave asks thousands of times).
    expect((await artifacts.ensure("t", 1, null, 1)).id).toBe(first.id);
    expect(existsSync(file)).toBe(false);
    // A host's pull failed: the next ensure finds the file gone and makes it again.
    commands.recordLocalFailure({
      id: "pull-that-failed",
      hostId: "h_00000000000000f1",
      kind: "pullImage",
      error: new GildError("GILD_TRANSFER_FAILED", "the stream ended early"),
    });
    const again = await artifacts.ensure("t", 1, null, 1);
    expect(again.id).toBe(first.id);
    expect(statSync(file).size).toBe(again.sizeBytes);
  });

  it("makes an artifact of an older controller (no chunk digests) again", async () => {
    const { artifacts, store } = c.controller.services;
    const current = await artifacts.ensure("t", 1, null, 1);
    const { chunkSize: _size, chunkSha256: _digests, ...older } = decodeManifest(current.manifest);
    store.artifacts.delete(current.id);
    store.artifacts.insert({ ...current, manifest: Buffer.from(encodeManifest(older)) });
    expect(decodeManifest(store.artifacts.byId(current.id)?.manifest as Buffer).chunkSize).toBe(0);
    // As a controller started on an older one's database: it has checked nothing yet.
    artifacts.forgetChecks();

    const again = await artifacts.ensure("t", 1, null, 1);
    expect(again.id).toBe(current.id);
    expect(decodeManifest(again.manifest).chunkSha256?.length).toBe(
      decodeManifest(current.manifest).chunkSha256?.length,
    );
    expect(decodeManifest(store.artifacts.byId(current.id)?.manifest as Buffer).chunkSize).toBeGreaterThan(0);
  });
});
