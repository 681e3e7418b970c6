import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { detectStreamCapabilities, ImageStore, Pool, receive, send } from "@gild/btrfs";
import { ImageBuilder } from "@gild/runtime";
import { createLoopBtrfs, type LoopBtrfs, run } from "@gild/testkit";
import { timed, writePayload } from "./machine.js";
import { fmt, median, report, type Sample } from "./stats.js";
import { benchFleetTransfer } from "./transfer-fleet.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 512);

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
    await mkdir(join(tree, "usr"), { recursive: true });
    await writePayload(tree, IMAGE_MIB);
    await new ImageBuilder(source).createFromDir("bench", tree);
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
