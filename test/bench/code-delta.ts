// node test/dist/bench/code-delta.js: a code line's next version when one file of its tree changed
// (2000 files, about 21 MiB): the time to make it (snapshot of the latest, syncTree, read-only), the size
// of its incremental stream and what that stream holds, and the time of `btrfs subvolume snapshot -r`
// of a code version (what an app generation would take at its code mount). Run by hand as root; not a
// test.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { ImageStore, Pool } from "@gild/btrfs";
import { ImageBuilder } from "@gild/runtime";
import { createLoopBtrfs, run } from "@gild/testkit";
import { fmt, median } from "./stats.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const FILES = 2000;
const FILE_BYTES = 11_000;

async function streamToFile(stream: Readable, file: string): Promise<number> {
  const { createWriteStream } = await import("node:fs");
  const { pipeline } = await import("node:stream/promises");
  let bytes = 0;
  stream.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  await pipeline(stream, createWriteStream(file));
  return bytes;
}

/** Commands of a send stream by kind, from `btrfs receive --dump`. */
async function commandCounts(file: string): Promise<string> {
  const { stdout } = await run("btrfs", ["receive", "--dump", "-f", file]);
  const counts = new Map<string, number>();
  for (const line of stdout.split("\n")) {
    const kind = line.split(/\s+/)[0];
    if (kind) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k} ${n}`).join(", ");
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench code-delta needs root");
  const scratch = await mkdtemp(join(tmpdir(), "gild-bench-code-"));
  const fs = await createLoopBtrfs({ sizeMiB: 2048 });
  try {
    const store = new ImageStore(await Pool.open(join(fs.mountPoint, "pool"), { create: true }));
    const builder = new ImageBuilder(store);
    const code = join(scratch, "code");
    for (let i = 0; i < FILES; i++) {
      const dir = join(code, "src", `module-${Math.floor(i / 50)}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `file-${i % 50}.php`), randomBytes(FILE_BYTES));
    }
    await writeFile(join(code, "config.php"), "<?php return ['build' => 0];\n");
    const [, firstMs] = await timed(() => builder.createFromDir("blog", code, { kind: "code" }));

    const makeMs: number[] = [];
    const deltas: number[] = [];
    let lastOutput = "";
    let lastDump = "";
    for (let i = 1; i <= RUNS; i++) {
      await writeFile(join(code, "config.php"), `<?php return ['build' => ${i}];\n`);
      const [info, ms] = await timed(() =>
        builder.createFromDir("blog", code, {
          kind: "code",
          onOutput: (line) => {
            lastOutput = line;
          },
        }),
      );
      makeMs.push(ms);
      const file = join(scratch, `delta-${info.version}.stream`);
      deltas.push(
        await streamToFile(store.sendStream("blog", info.version, { parent: info.version - 1 }), file),
      );
      lastDump = await commandCounts(file);
    }
    const latest = (await store.latest("blog")) as number;
    const full = await streamToFile(store.sendStream("blog", latest), join(scratch, "full.stream"));

    // What an app generation would do at its code mount: a read-only snapshot of the code version.
    const snapMs: number[] = [];
    const snaps = join(fs.mountPoint, "snaps");
    await mkdir(snaps);
    for (let i = 0; i < 10; i++) {
      const [, ms] = await timed(() =>
        run("btrfs", [
          "subvolume",
          "snapshot",
          "-r",
          store.pool.rootfsPath("blog", latest),
          join(snaps, `s${i}`),
        ]),
      );
      snapMs.push(ms);
    }
    for (let i = 0; i < 10; i++) await run("btrfs", ["subvolume", "delete", join(snaps, `s${i}`)]);

    process.stdout.write(
      [
        "",
        `code line: ${FILES} files of ${FILE_BYTES} B (${fmt((FILES * FILE_BYTES) / 1024 ** 2, 1)} MiB), one file changed per version, ${RUNS} versions`,
        `  first version (cp -a into an empty subvolume): ${fmt(firstMs, 0)} ms`,
        `  next version (snapshot, syncTree, read-only, promote): median ${fmt(median(makeMs), 0)} ms   runs: ${makeMs.map((m) => fmt(m, 0)).join(" ")}`,
        `  ${lastOutput}`,
        `  incremental stream: median ${fmt(median(deltas), 0)} B   full stream: ${fmt(full / 1024 ** 2, 1)} MiB`,
        `  incremental stream commands: ${lastDump}`,
        `btrfs subvolume snapshot -r of a code version (10 runs): median ${fmt(median(snapMs), 1)} ms   runs: ${snapMs.map((m) => fmt(m, 1)).join(" ")}`,
        "",
      ].join("\n"),
    );
  } finally {
    await fs.destroy();
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
