import { readFile } from "node:fs/promises";
import { arch, hostname, release } from "node:os";

/**
 * Facts about the host that hold while the agent runs, shown by `gild hosts`: OS, architecture,
 * hostname, Node.js, kernel release and boot time (epoch ms; the CLI shows uptime from it, so that no
 * duration is measured on the agent's clock and sent stale).
 */
export async function hostFacts(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const osRelease = await readFile("/etc/os-release", "utf8").catch(() => "");
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1] ?? "unknown";
  return {
    os: pretty,
    arch: arch(),
    hostname: hostname(),
    node: process.version,
    kernel: release(),
    bootTime: await bootTime(),
    ...extra,
  };
}

/** The kernel's boot time (/proc/stat's btime, in seconds since the epoch) as epoch ms, or "unknown". */
async function bootTime(): Promise<string> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => "");
  const seconds = /^btime (\d+)$/m.exec(stat)?.[1];
  return seconds === undefined ? "unknown" : String(Number(seconds) * 1000);
}
