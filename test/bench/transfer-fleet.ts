// The controller -> WebSocket (TLS) -> agent -> verified image path, against the raw pipe
// `btrfs send | btrfs receive` on the same image, alternating; CPU seconds per GiB of each path; the
// controller's and agent's peak RSS while moving a large image; and a small delta to a joined agent
// against the raw incremental pipe, through the API and through the built CLI (`gild image push`).
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { buildBusyboxRoot, createFleet, type Fleet, readProcessUsage, run, updateImage } from "@gild/testkit";
import { timed, writePayload } from "./machine.js";
import { pushTraced } from "./push-client.js";
import { fmt, median, report, type Sample } from "./stats.js";

/**
 * Deliver a version to host-1 through the controller's API (what `gild image push` calls), from this
 * process: the CLI's own start-up is not part of the path being measured.
 */
async function push(fleet: Fleet, ref: string): Promise<{ bytes: number; streamVersion: number }> {
  return pushTraced(fleet, ref, "host-1");
}

/** The same push through the built CLI, as an operator runs it (`gild image push`), start-up included. */
async function pushWithCli(fleet: Fleet, ref: string): Promise<void> {
  const res = await fleet.gild(["image", "push", ref, "--hosts", "host-1"]);
  if (res.code !== 0) throw new Error(`gild image push ${ref}: ${res.stderr}`);
}

/** A busybox root (so `image update` can run a shell in it) plus the payload. */
async function generateTree(dir: string, mib: number): Promise<void> {
  await buildBusyboxRoot(dir, { marker: "bench" });
  await writePayload(dir, mib);
}

/** CPU seconds a process used so far (0 once it is gone). */
const cpuOf = (pid: number | undefined) => (pid === undefined ? 0 : (readProcessUsage(pid)?.cpuSeconds ?? 0));

/** Resident memory of a process now, bytes (0 once it is gone). */
const rssBytes = (pid: number | undefined) =>
  pid === undefined ? 0 : (readProcessUsage(pid)?.rssBytes ?? 0);

async function evict(fleet: Fleet, ref: string): Promise<void> {
  const res = await fleet.gild(["image", "rm", ref, "--hosts", "host-1"]);
  if (res.code !== 0) throw new Error(`evict ${ref}: ${res.stderr}`);
}

export async function benchFleetTransfer(options: {
  runs: number;
  imageMiB: number;
  rssImageMiB: number;
}): Promise<void> {
  const fleet = await createFleet({
    hosts: 1,
    poolSizeMiB: options.rssImageMiB * 3 + 2048,
    controllerPoolSizeMiB: (options.imageMiB + options.rssImageMiB) * 3 + 2048,
  });
  try {
    const host = fleet.hosts[0] as Fleet["hosts"][number];
    const tree = join(fleet.controllerPool, "..", "bench-tree");
    process.stdout.write(`\ngenerating a ${options.imageMiB} MiB image on the controller ...\n`);
    await generateTree(tree, options.imageMiB);
    await fleet.gildJson(["image", "create", "bench", "--from-dir", tree]);
    await rm(tree, { recursive: true, force: true });
    const rootfs = (v: number) => join(fleet.controllerPool, "images", "bench", String(v), "rootfs");
    // The first push makes nothing new: the full artifact was made when the version was created.
    const first = await push(fleet, "bench@1");
    await evict(fleet, "bench@1");
    const flags = first.streamVersion === 2 ? ["--proto", "2", "--compressed-data"] : [];
    const rawTarget = join(host.poolPath, "raw-bench");
    await mkdir(rawTarget, { recursive: true });
    const ws: Sample[] = [];
    const rawSame: Sample[] = [];
    const rawPlain: Sample[] = [];
    // CPU seconds of each daemon alone per push (the agent's own, without its btrfs children).
    const controllerCpu: number[] = [];
    const agentCpu: number[] = [];
    for (let i = 0; i < options.runs; i++) {
      const c0 = cpuOf(fleet.controllerPid());
      const a0 = cpuOf(host.pid());
      ws.push(
        await timed(() => push(fleet, "bench@1").then(() => undefined), [fleet.controllerPid(), host.pid()]),
      );
      controllerCpu.push(cpuOf(fleet.controllerPid()) - c0);
      agentCpu.push(cpuOf(host.pid()) - a0);
      await evict(fleet, "bench@1");
      for (const [samples, f] of [
        [rawSame, flags],
        [rawPlain, [] as string[]],
      ] as const) {
        samples.push(
          await timed(async () => {
            await run("sh", [
              "-c",
              `btrfs send -q ${f.join(" ")} ${rootfs(1)} | btrfs receive -q ${rawTarget}`,
            ]);
          }),
        );
        await run("btrfs", ["subvolume", "delete", join(rawTarget, "rootfs")]);
      }
    }
    report(
      `controller -> WebSocket (TLS) -> agent, ${first.streamVersion === 2 ? "--compressed-data" : "plain"} stream`,
      first.bytes,
      {
        "push API (verified, promoted)": ws,
        [`raw pipe, same flags${flags.length ? " (--compressed-data)" : ""}`]: rawSame,
        "raw pipe, plain stream": rawPlain,
      },
    );
    const wsMedian = median(ws.map((s) => s.seconds));
    const fullRatio = median(rawSame.map((s) => s.seconds)) / wsMedian;
    const gib = first.bytes / 1024 ** 3;
    process.stdout.write(
      `  ratio (push throughput / raw pipe, same flags) = ${fmt(fullRatio)}   target >= 0.8 (aim 0.9)\n` +
        `  default path vs plain raw pipe: push ${fmt(wsMedian)} s, raw plain ${fmt(median(rawPlain.map((s) => s.seconds)))} s (push faster: ${wsMedian < median(rawPlain.map((s) => s.seconds))})\n` +
        `  CPU of the push by daemon: controller ${fmt(median(controllerCpu) / gib, 2)} s/GiB, agent ${fmt(median(agentCpu) / gib, 2)} s/GiB (its own, without btrfs receive)\n`,
    );

    // A small patch: the delta a joined agent needs, against the raw incremental pipe.
    await push(fleet, "bench@1");
    await updateImage(
      fleet,
      "bench",
      "head -c 4000000 /dev/urandom > /patch.bin && echo patched >> /etc/os-release",
    );
    const hostCopyOf1 = join(host.poolPath, "images", "bench", "1", "rootfs");
    const deltaWs: Sample[] = [];
    const deltaCli: Sample[] = [];
    const deltaRaw: Sample[] = [];
    let deltaBytes = 0;
    for (let i = 0; i < options.runs; i++) {
      // CPU of both daemons too (this process's own is counted by timed): without their pids the
      // push's CPU read as 0.
      const daemons = [fleet.controllerPid(), host.pid()];
      deltaWs.push(
        await timed(async () => {
          deltaBytes = (await push(fleet, "bench@2")).bytes;
        }, daemons),
      );
      await evict(fleet, "bench@2");
      deltaCli.push(await timed(() => pushWithCli(fleet, "bench@2"), daemons));
      await evict(fleet, "bench@2");
      deltaRaw.push(
        await timed(async () => {
          await run("sh", [
            "-c",
            `btrfs send -q ${flags.join(" ")} -p ${rootfs(1)} ${rootfs(2)} | btrfs receive -q ${rawTarget}`,
          ]);
        }),
      );
      await run("btrfs", ["subvolume", "delete", join(rawTarget, "rootfs")]);
    }
    report("a small delta (bench@1 -> bench@2) to a joined agent", deltaBytes, {
      "push API (incremental)": deltaWs,
      "gild image push (CLI, start-up included)": deltaCli,
      "raw incremental pipe": deltaRaw,
    });
    const rawDelta = median(deltaRaw.map((s) => s.seconds));
    const deltaApiRatio = median(deltaWs.map((s) => s.seconds)) / rawDelta;
    const deltaCliRatio = median(deltaCli.map((s) => s.seconds)) / rawDelta;
    process.stdout.write(
      `  push API / raw = ${fmt(deltaApiRatio)}x   target <= 1.5x (parent ${hostCopyOf1} held by the agent)\n` +
        `  CLI push / raw = ${fmt(deltaCliRatio)}x   target <= 1.5x\n`,
    );

    // Peak RSS of both daemons while moving a large image.
    process.stdout.write(`\ngenerating a ${options.rssImageMiB} MiB image for the memory check ...\n`);
    const bigTree = join(fleet.controllerPool, "..", "big-tree");
    await generateTree(bigTree, options.rssImageMiB);
    await fleet.gildJson(["image", "create", "big", "--from-dir", bigTree]);
    await rm(bigTree, { recursive: true, force: true });
    let peakController = 0;
    let peakAgent = 0;
    const sampler = setInterval(() => {
      peakController = Math.max(peakController, rssBytes(fleet.controllerPid()));
      peakAgent = Math.max(peakAgent, rssBytes(host.pid()));
    }, 100);
    const big = await push(fleet, "big@1");
    clearInterval(sampler);
    process.stdout.write(
      `moving ${(big.bytes / 1024 ** 3).toFixed(2)} GiB: peak RSS controller ${(peakController / 1024 ** 2).toFixed(0)} MiB, agent ${(peakAgent / 1024 ** 2).toFixed(0)} MiB (target <= 200 MiB each)\n`,
    );

    // Every figure with a target, in one place (a fan-out line belongs here too once it is measured).
    const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
    const rows: Array<[string, string, string, boolean]> = [
      ["full push / raw pipe, same flags (throughput)", fmt(fullRatio), ">= 0.8", fullRatio >= 0.8],
      ["delta push / raw incremental pipe, API", `${fmt(deltaApiRatio)}x`, "<= 1.5x", deltaApiRatio <= 1.5],
      ["delta push / raw incremental pipe, CLI", `${fmt(deltaCliRatio)}x`, "<= 1.5x", deltaCliRatio <= 1.5],
      [
        "peak RSS, controller, moving 1 GiB",
        mib(peakController),
        "<= 200 MiB",
        peakController <= 200 * 1024 ** 2,
      ],
      ["peak RSS, agent, moving 1 GiB", mib(peakAgent), "<= 200 MiB", peakAgent <= 200 * 1024 ** 2],
    ];
    process.stdout.write(`\nsummary (medians of ${options.runs} runs)\n`);
    for (const [what, value, target, met] of rows)
      process.stdout.write(
        `  ${what.padEnd(48)} ${value.padStart(8)}   target ${target.padEnd(10)} ${met ? "met" : "MISSED"}\n`,
      );
  } finally {
    await fleet.destroy();
  }
}
