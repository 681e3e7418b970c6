import { readFileSync, writeFileSync } from "node:fs";
import { run } from "@gild/testkit";

/** Flush dirty pages and drop the page cache, so every run starts cold (needs root). */
export async function coldCaches(): Promise<void> {
  await run("sync", []);
  writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

/**
 * CPU seconds used so far by this process and by its children that have been waited for
 * (utime, stime, cutime, cstime of /proc/self/stat; 100 ticks per second on Linux).
 */
export function cpuSecondsSoFar(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return ticks / 100;
}

/** Peak resident set size of a process in bytes (VmHWM), or NaN if it is gone. */
export function peakRssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
    return kib === undefined ? Number.NaN : Number(kib) * 1024;
  } catch {
    return Number.NaN;
  }
}
