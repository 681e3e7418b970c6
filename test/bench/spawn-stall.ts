// pnpm bench:spawn: what starting a btrfs program costs a daemon with a large heap, with and without
// the spawn helper (packages/btrfs/src/spawn-helper.ts). This process holds BENCH_HEAP_MIB of memory
// (default 800: the controller's RSS at 10,000 agents), written page by page, and sends a small
// image version (8 MiB of data; `btrfs send`, read to its end) BENCH_RUNS times each way, alternating. Per send:
// - how long the call that starts it blocked (node starts every child with fork(), which copies the
//   page tables of the whole process);
// - how long writing every page of that memory took right after the send (a fork write-protects
//   each page, and the first write to each costs a fault), against the same writes with no send;
// - the send's wall time.
// Run by hand as root; not a test (this machine is shared and noisy).
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageStore, Pool, SpawnHelper, send } from "@gild/btrfs";
import { silentLogger } from "@gild/core";
import { ImageBuilder } from "@gild/runtime";
import { createLoopBtrfs } from "@gild/testkit";
import { writePayload } from "./machine.js";
import { fmt, median } from "./stats.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const HEAP_MIB = Number(process.env.BENCH_HEAP_MIB ?? 800);
const PAGE = 4096;

/** Write one byte of every page of `held` (what a daemon does to its heap over time). */
function writeEveryPage(held: readonly Buffer[]): number {
  const t0 = performance.now();
  for (const buf of held) for (let at = 0; at < buf.length; at += PAGE) buf[at] = (buf[at] as number) + 1;
  return performance.now() - t0;
}

interface Run {
  bytes: number;
  blockedMs: number;
  rewriteMs: number;
  sendMs: number;
}

async function sendOnce(store: ImageStore, held: readonly Buffer[]): Promise<Run> {
  const t0 = performance.now();
  const stream = send(store, "bench", 1);
  const blockedMs = performance.now() - t0;
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  const sendMs = performance.now() - t0;
  if (bytes === 0) throw new Error("btrfs send gave no bytes");
  return { bytes, blockedMs, rewriteMs: writeEveryPage(held), sendMs };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:spawn needs root (loop devices, btrfs)");
  const scratch = await mkdtemp(join(tmpdir(), "gild-bench-spawn-"));
  const fs = await createLoopBtrfs({ sizeMiB: 1024 });
  const helper = new SpawnHelper({ socketDir: join(scratch, "spawn"), log: silentLogger });
  try {
    // Forked while this process is small, as the daemons do at their start.
    helper.warm();
    const poolPath = join(fs.mountPoint, "pool");
    const forking = new ImageStore(await Pool.open(poolPath, { create: true }));
    const tree = join(fs.mountPoint, "tree");
    await mkdir(tree);
    await writePayload(tree, 8);
    await new ImageBuilder(forking).createFromDir("bench", tree);
    const launched = new ImageStore(await Pool.open(poolPath, { launcher: helper }));

    process.stdout.write(`holding ${HEAP_MIB} MiB ...\n`);
    const held = Array.from({ length: HEAP_MIB }, () => Buffer.alloc(1024 * 1024, 1));
    writeEveryPage(held);
    const quiet = Array.from({ length: RUNS }, () => writeEveryPage(held));
    const rssMiB = process.memoryUsage().rss / 1024 ** 2;
    const ways = { "this process forks": forking, "spawn helper": launched } as const;
    const runs: Record<keyof typeof ways, Run[]> = { "this process forks": [], "spawn helper": [] };
    for (let i = 0; i < RUNS; i++)
      for (const [way, store] of Object.entries(ways) as Array<[keyof typeof ways, ImageStore]>)
        runs[way].push(await sendOnce(store, held));

    process.stdout.write(
      `\nbtrfs send of a version (${fmt(runs["spawn helper"][0]?.bytes ?? 0, 0)} bytes) from a process of ` +
        `${fmt(rssMiB, 0)} MiB RSS, ${RUNS} runs each, medians (max):\n` +
        `  writing every page of ${HEAP_MIB} MiB with no send: ${fmt(median(quiet), 1)} ms\n`,
    );
    for (const [way, list] of Object.entries(runs)) {
      const pick = (f: (r: Run) => number) =>
        `${fmt(median(list.map(f)), 1)} (${fmt(Math.max(...list.map(f)), 1)})`;
      process.stdout.write(
        `  ${way.padEnd(20)} start blocked ${pick((r) => r.blockedMs)} ms; ` +
          `pages written again after it ${pick((r) => r.rewriteMs)} ms; send ${pick((r) => r.sendMs)} ms\n`,
      );
    }
    const ratio = (f: (r: Run) => number) =>
      median(runs["this process forks"].map(f)) / Math.max(0.001, median(runs["spawn helper"].map(f)));
    process.stdout.write(
      `  forking / helper: start blocked ${fmt(
        ratio((r) => r.blockedMs),
        1,
      )}x, ` +
        `pages written again ${fmt(
          ratio((r) => r.rewriteMs),
          1,
        )}x\n`,
    );
  } finally {
    helper.close();
    await fs.destroy();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
