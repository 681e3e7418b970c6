import { readFile } from "node:fs/promises";
import { arch, hostname } from "node:os";

/** Facts about the host, shown by `gild hosts --json`: OS, architecture, hostname, Node.js. */
export async function hostFacts(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const osRelease = await readFile("/etc/os-release", "utf8").catch(() => "");
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1] ?? "unknown";
  return { os: pretty, arch: arch(), hostname: hostname(), node: process.version, ...extra };
}
