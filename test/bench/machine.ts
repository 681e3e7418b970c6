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
