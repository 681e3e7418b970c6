import { randomBytes } from "node:crypto";
import { chmod, chown, link, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { type ImageStore, send } from "@gild/btrfs";
import type { ImageOrigin, ImageVersionInfo } from "@gild/core";
import { buildBusyboxRoot, run } from "@gild/testkit";

/**
 * A small OS tree nspawn accepts (busybox), plus entries that exercise what a transfer must keep:
 * modes with special bits, owners, xattrs, symlinks, hard links, an empty dir, and some MiB of data.
 */
export async function makeSampleTree(dir: string, options: { dataMiB?: number } = {}): Promise<void> {
  await buildBusyboxRoot(dir, { marker: "sample v1" });
  await writeFile(join(dir, "gild-sample.txt"), "a top-level file\n");
  const data = join(dir, "srv", "sample");
  await mkdir(join(data, "empty-dir"), { recursive: true });
  await mkdir(join(data, "nested", "deeper"), { recursive: true });
  await writeFile(join(data, "big.bin"), randomBytes((options.dataMiB ?? 4) * 1024 * 1024));
  await writeFile(join(data, "nested", "deeper", "note.txt"), "hello from a nested dir\n");
  await writeFile(join(data, "small.txt"), "small file\n");
  await writeFile(join(data, "to-delete.txt"), "removed by the update\n");
  await writeFile(join(data, "setuid-tool"), "#!/bin/sh\nexit 0\n");
  await chmod(join(data, "setuid-tool"), 0o4755);
  await writeFile(join(data, "private.key"), "secret\n");
  await chmod(join(data, "private.key"), 0o600);
  await chown(join(data, "private.key"), 1000, 1000);
  await chown(join(data, "nested"), 33, 33);
  await symlink("small.txt", join(data, "link-to-small"));
  await symlink("/etc/os-release", join(data, "absolute-link"));
  await link(join(data, "small.txt"), join(data, "hardlink-to-small"));
  await run("setfattr", ["-n", "user.gild", "-v", "sample", join(data, "small.txt")]);
  await run("setfattr", ["-n", "user.empty", join(data, "nested")]);
}

/** Everything a Readable yields, as one Buffer. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The next version of `line` on `store`: a copy of `dir` (what `gild image create --from-dir` makes). */
export async function addFromDir(
  store: ImageStore,
  line: string,
  dir: string,
  createdBy?: string,
): Promise<ImageVersionInfo> {
  const version = { from: null, origin: { kind: "dir", path: dir } as const, createdBy };
  return store.addVersion(line, version, async (rootfs) => {
    await run("cp", ["-a", "--reflink=auto", `${dir}/.`, `${rootfs}/`]);
  });
}

/**
 * The next version of `line` from its latest: a writable snapshot changed by `script`, run by the host's
 * shell in the root (the container builds are @gild/runtime's, tested there).
 */
export async function addChanged(store: ImageStore, line: string, script: string): Promise<ImageVersionInfo> {
  const from = (await store.latest(line)) ?? null;
  const origin: ImageOrigin = { kind: "update", from: from ?? 0, command: ["sh", "-c", script] };
  return store.addVersion(line, { from, origin }, async (rootfs) => {
    await run("sh", ["-c", script], { cwd: rootfs });
  });
}

/** What stream.test.ts changes between img@1 and img@2: a line added, a file deleted, a mode, a new file. */
export const SAMPLE_CHANGES =
  "echo changed >> srv/sample/small.txt && rm srv/sample/to-delete.txt && chmod 0700 srv/sample/nested && echo new > srv/sample/new.txt";

/**
 * img@1 (the sample tree, made in `scratch`) and img@2 (SAMPLE_CHANGES) in `source`, and the full
 * stream of the one and the incremental stream of the other.
 */
export async function twoVersions(
  source: ImageStore,
  scratch: string,
): Promise<{ full: Buffer; incremental: Buffer }> {
  const tree = join(scratch, "tree");
  await makeSampleTree(tree);
  await addFromDir(source, "img", tree, "test");
  await addChanged(source, "img", SAMPLE_CHANGES);
  return {
    full: await collect(send(source, "img", 1)),
    incremental: await collect(send(source, "img", 2, { parent: 1 })),
  };
}
