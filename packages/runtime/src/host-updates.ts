import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { runHost } from "./host-exec.js";

/** The package updates apt would install now: all of them, and those from a security suite. */
export interface PendingUpdates {
  total: number;
  security: number;
}

/** Whether the host asks for a reboot (Debian's /run/reboot-required), and the packages that asked. */
export interface RebootRequired {
  required: boolean;
  packages: string[];
}

// A suite named `<codename>-security` (Debian's `bookworm-security` or `oldstable-security`, Ubuntu's
// `jammy-security`) in an `Inst` line's list of origins: `Debian-Security:12/oldstable-security`.
const SECURITY_SUITE = /\/[^\s/,]+-security(?=[\s,]|$)/;

/**
 * Count the packages an `apt-get -s dist-upgrade` simulation would install (its `Inst` lines), and
 * those of them available from a `*-security` suite. An `Inst` line reads
 * `Inst pkg [old] (new Origin:version/suite[, Origin:version/suite...] [arch])`.
 */
export function parseAptSimulation(output: string): PendingUpdates {
  let total = 0;
  let security = 0;
  for (const line of output.split("\n")) {
    if (!line.startsWith("Inst ")) continue;
    total += 1;
    const origins = /\((\S+) ([^)]*)\)/.exec(line)?.[2] ?? "";
    if (SECURITY_SUITE.test(origins)) security += 1;
  }
  return { total, security };
}

/**
 * The pending package updates, from a simulation that reads only apt's local lists (no download, no
 * lock, no cache file written: it works under the agent's read-only sandbox and beside a running apt).
 * Throws GILD_TOOL_MISSING without apt-get, and a GildError when it fails or outlives `timeoutMs`.
 */
export async function pendingUpdates(
  options: { timeoutMs?: number; cancelSignal?: AbortSignal } = {},
): Promise<PendingUpdates> {
  const { stdout } = await runHost(
    "apt-get",
    [
      "-s",
      "-o",
      "Debug::NoLocking=1",
      "-o",
      "Dir::Cache::pkgcache=",
      "-o",
      "Dir::Cache::srcpkgcache=",
      "dist-upgrade",
    ],
    { timeoutMs: options.timeoutMs ?? 20_000, cancelSignal: options.cancelSignal },
  );
  return parseAptSimulation(stdout);
}

/**
 * What apt's view of pending updates depends on: the installed packages, the downloaded lists and
 * the sources. The same stamp means the same answer, so a refresh can skip the simulation.
 */
export async function aptStateStamp(root = "/"): Promise<string> {
  const paths = [
    "var/lib/dpkg/status",
    "var/lib/apt/lists",
    "etc/apt/sources.list",
    "etc/apt/sources.list.d",
  ];
  const parts = await Promise.all(
    paths.map(async (p) => {
      const info = await stat(join(root, p)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined;
        throw err;
      });
      return info ? `${p}:${info.mtimeMs}:${info.size}` : `${p}:-`;
    }),
  );
  return parts.join(" ");
}

/** Debian's reboot flag: /run/reboot-required, with the packages /run/reboot-required.pkgs names. */
export async function rebootRequired(root = "/"): Promise<RebootRequired> {
  const readIfExists = (path: string) =>
    readFile(join(root, path), "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
  const [flag, list] = await Promise.all([
    readIfExists("run/reboot-required"),
    readIfExists("run/reboot-required.pkgs"),
  ]);
  const packages = [
    ...new Set(
      (list ?? "")
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean),
    ),
  ];
  return { required: flag !== undefined, packages };
}
