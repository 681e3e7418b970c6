// pnpm bench:transfer: full send -> receive of a generated image of 512 MiB or more, through
// @gild/btrfs's stream API and through the raw shell pipe `btrfs send | btrfs receive`, alternating,
// at least 5 runs each; prints medians, MiB/s, CPU s/GiB and the ratio (API throughput / raw).
// Run by hand as root; not a test (this machine is shared and noisy).
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { detectStreamCapabilities, ImageStore, Pool, receive, send } from "@gild/btrfs";
import { createLoopBtrfs, type LoopBtrfs, run } from "@gild/testkit";
import { coldCaches, cpuSecondsSoFar } from "./machine.js";
import { fmt, median, report, type Sample } from "./stats.js";
import { benchFleetTransfer } from "./transfer-fleet.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 512);

/** Half incompressible bytes, half compressible text: a rough stand-in for a Debian root. */
async function generateTree(dir: string, mib: number): Promise<void> {
  await mkdir(join(dir, "usr"), { recursive: true });
  const fileBytes = 8 * 1024 * 1024;
  const text = Buffer.from(
    "gild bench: a line of compressible text, much like a config or a script\n".repeat(1 << 17),
  ).subarray(0, fileBytes);
  for (let i = 0; i < Math.ceil(mib / 8); i++) {
    await writeFile(join(dir, `file-${i}.bin`), i % 2 === 0 ? randomBytes(fileBytes) : text);
  }
}

async function timed(fn: () => Promise<void>): Promise<Sample> {
  await coldCaches();
  const cpu0 = cpuSecondsSoFar();
  const t0 = performance.now();
  await fn();
  return { seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSecondsSoFar() - cpu0 };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("bench:transfer needs root (loop devices, btrfs, drop_caches)");
  const caps = await detectStreamCapabilities();
  const fsA: LoopBtrfs = await createLoopBtrfs({ sizeMiB: IMAGE_MIB * 3 + 1024, compress: true });
  const fsB: LoopBtrfs = await createLoopBtrfs({ sizeMiB: IMAGE_MIB * 3 + 1024, compress: true });
  try {
    const source = new ImageStore(await Pool.open(join(fsA.mountPoint, "pool"), { create: true }));
    const target = new ImageStore(await Pool.open(join(fsB.mountPoint, "pool"), { create: true }));
    const tree = join(fsA.mountPoint, "tree");
    process.stdout.write(`generating a ${IMAGE_MIB} MiB image ...\n`);
    await generateTree(tree, IMAGE_MIB);
    await source.createFromDir("bench", tree);
    const rootfs = source.pool.rootfsPath("bench", 1);
    const streamBytes = (await run("sh", ["-c", `btrfs send -q ${rootfs} | wc -c`])).stdout.trim();
    const flagSets: Array<{ name: string; compressed: boolean }> = [
      { name: "plain stream", compressed: false },
    ];
    if (caps.canSendCompressed) flagSets.push({ name: "--compressed-data", compressed: true });

    let version = 0;
    for (const flags of flagSets) {
      const api: Sample[] = [];
      const raw: Sample[] = [];
      let bytes = 0;
      for (let i = 0; i < RUNS; i++) {
        const v = ++version;
        api.push(
          await timed(async () => {
            const result = await receive(
              target,
              send(source, "bench", 1, { compressedData: flags.compressed }),
              {
                line: "bench",
                version: v,
              },
            );
            bytes = result.bytes;
            await run("btrfs", ["filesystem", "sync", fsB.mountPoint]);
          }),
        );
        await target.remove("bench", v);
        const rawDir = join(fsB.mountPoint, `raw-${v}`);
        await mkdir(rawDir);
        const sendFlags = flags.compressed ? "--proto 2 --compressed-data " : "";
        raw.push(
          await timed(async () => {
            await run("sh", ["-c", `btrfs send -q ${sendFlags}${rootfs} | btrfs receive -q ${rawDir}`]);
            await run("btrfs", ["filesystem", "sync", fsB.mountPoint]);
          }),
        );
        await run("btrfs", ["subvolume", "delete", join(rawDir, "rootfs")]);
      }
      report(`full send -> receive, ${flags.name}`, bytes, {
        "@gild/btrfs send() -> receive()": api,
        "raw: btrfs send | btrfs receive": raw,
      });
      const ratio = median(raw.map((s) => s.seconds)) / median(api.map((s) => s.seconds));
      process.stdout.write(`  ratio (API throughput / raw pipe) = ${fmt(ratio, 3)}   target >= 0.95\n`);
    }
    process.stdout.write(
      `\nplain stream size ${streamBytes} bytes; kernel ${caps.kernelVersion}, btrfs-progs ${caps.progsVersion}\n`,
    );
  } finally {
    await fsA.destroy();
    await fsB.destroy();
  }
}

// BENCH_PARTS=api,fleet (default both): the package's stream API, and the controller -> agent path.
const parts = (process.env.BENCH_PARTS ?? "api,fleet").split(",");
if (parts.includes("api")) await main();
if (parts.includes("fleet")) {
  await benchFleetTransfer({
    runs: RUNS,
    imageMiB: IMAGE_MIB,
    rssImageMiB: Number(process.env.BENCH_RSS_IMAGE_MIB ?? 2048),
  });
}
