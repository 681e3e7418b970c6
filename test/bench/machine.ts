import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "@gild/testkit";
import type { Sample } from "./stats.js";

/** Flush dirty pages and drop the page cache, so every run starts cold (needs root). */
export async function coldCaches(): Promise<void> {
  await run("sync", []);
  writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

/**
 * CPU seconds used so far by a process (default this one) and by its children that have been waited
 * for (utime, stime, cutime, cstime of /proc/<pid>/stat; 100 ticks per second on Linux).
 */
export function cpuSecondsSoFar(pid: number | "self" = "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return ticks / 100;
}

/** Time `fn` from cold caches, with the CPU it cost this process (and its waited-for children) and `pids`. */
export async function timed(
  fn: () => Promise<void>,
  pids: ReadonlyArray<number | undefined> = [],
): Promise<Sample> {
  await coldCaches();
  const cpu = () =>
    cpuSecondsSoFar() +
    pids.reduce<number>((sum, pid) => sum + (pid === undefined ? 0 : cpuSecondsSoFar(pid)), 0);
  const cpu0 = cpu();
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, cpuSeconds: cpu() - cpu0 };
}

/** `mib` MiB of files in `dir`: half incompressible bytes, half text, a rough stand-in for a Debian root. */
export async function writePayload(dir: string, mib: number): Promise<void> {
  const fileBytes = 8 * 1024 * 1024;
  const text = Buffer.from(
    "gild bench: a line of compressible text, much like a config or a script\n".repeat(1 << 17),
  ).subarray(0, fileBytes);
  for (let i = 0; i < Math.ceil(mib / 8); i++) {
    await writeFile(join(dir, `file-${i}.bin`), i % 2 === 0 ? randomBytes(fileBytes) : text);
  }
}
