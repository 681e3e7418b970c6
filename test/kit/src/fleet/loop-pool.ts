import { mkdirSync } from "node:fs";
import { run, tryRunSync } from "../host-commands.js";
import type { PoolRecord } from "./fleet-state.js";

/**
 * Make btrfs on a sparse loopback file and mount it; resolves with the loop device. The one way the kit
 * makes a pool (createLoopBtrfs and the fleet's pools). Undo of a partial pool finds the loop device by
 * its backing file (loopDevicesOf).
 */
export async function makeLoopPool(
  pool: PoolRecord,
  options: { label: string; compress: boolean },
): Promise<string> {
  mkdirSync(pool.mountPoint, { recursive: true });
  await run("truncate", ["-s", `${pool.sizeMiB}M`, pool.backingFile]);
  await run("mkfs.btrfs", ["-q", "-f", "-L", options.label, pool.backingFile]);
  const device = await attachLoop(pool.backingFile);
  await run("mount", [...(options.compress ? ["-o", "compress=zstd"] : []), device, pool.mountPoint]);
  return device;
}

/**
 * `losetup --find --show`, retried: another process (a parallel test) can take the free device between
 * the find and the attach, which fails with "Device or resource busy".
 */
async function attachLoop(backingFile: string): Promise<string> {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return (await run("losetup", ["--find", "--show", backingFile])).stdout.trim();
    } catch (err) {
      last = err;
      // Detach what a failed attempt may have attached before trying again.
      for (const device of loopDevicesOf(backingFile)) tryRunSync("losetup", ["-d", device]);
    }
  }
  throw last;
}

/** Loop devices backed by this file (`losetup -j`); none when the file is gone. */
export function loopDevicesOf(backingFile: string): string[] {
  const result = tryRunSync("losetup", ["-j", backingFile]);
  if (!result.ok) return [];
  return result.output
    .split("\n")
    .map((l) => l.split(":")[0]?.trim() ?? "")
    .filter((d) => d.startsWith("/dev/"));
}
