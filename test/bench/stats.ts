/** Median of a sample (mean of the middle two for even sizes). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Wall seconds and CPU seconds (this process and its waited-for children) of one run. */
export interface Sample {
  seconds: number;
  cpuSeconds: number;
}

export function fmt(value: number, digits = 3): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

/** Print one row per path: median seconds, MiB/s, CPU s/GiB, and each run. */
export function report(title: string, bytes: number, paths: Record<string, Sample[]>): void {
  const gib = bytes / 1024 ** 3;
  process.stdout.write(`\n${title}  (${(bytes / 1024 ** 2).toFixed(1)} MiB per run)\n`);
  for (const [name, samples] of Object.entries(paths)) {
    const secs = median(samples.map((s) => s.seconds));
    const cpu = median(samples.map((s) => s.cpuSeconds));
    process.stdout.write(
      `  ${name.padEnd(34)} median ${fmt(secs)} s  ${fmt(bytes / 1024 ** 2 / secs, 1).padStart(7)} MiB/s  CPU ${fmt(cpu / gib, 2)} s/GiB   runs: ${samples.map((s) => fmt(s.seconds, 2)).join(" ")}\n`,
    );
  }
}
