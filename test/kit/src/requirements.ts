import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tryRunSync } from "./host-commands.js";
import { MANY_OPEN_FILES, mayRaiseHardLimits, openFileLimits } from "./open-files.js";

/** What a test may need from the machine. */
export type Requirement =
  | "root"
  | "btrfs"
  | "nspawn"
  | "netns"
  | "busybox"
  | "debootstrap"
  | "shellcheck"
  | "systemd-analyze"
  | "setpriv"
  | "faketime"
  | "promtool"
  | "chromium"
  | "postgres"
  | "open-files";

/** Debian's Chromium (apt-get install chromium), which the dashboard's browser tests drive. */
export const CHROMIUM = "/usr/bin/chromium";

/** Debian's PostgreSQL 15 (apt-get install postgresql-15): a test starts a temporary cluster of it. */
export const POSTGRES_INITDB = "/usr/lib/postgresql/15/bin/initdb";

/** libfaketime, which fault tests preload into an agent to move its wall clock (Debian's faketime). */
export const FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

function hasProgram(name: string): boolean {
  const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const checks: Record<Requirement, () => string | undefined> = {
  root: () => (process.getuid?.() === 0 ? undefined : "needs root (mounts, loop devices, containers)"),
  btrfs: () => {
    if (
      !readFileSync("/proc/filesystems", "utf8").includes("btrfs") &&
      !tryRunSync("modprobe", ["btrfs"]).ok
    ) {
      return "the kernel has no btrfs";
    }
    if (!hasProgram("mkfs.btrfs") || !hasProgram("btrfs"))
      return "btrfs-progs is not installed (apt-get install btrfs-progs)";
    if (!existsSync("/dev/loop-control")) return "no loop devices (/dev/loop-control missing)";
    return undefined;
  },
  nspawn: () =>
    hasProgram("systemd-nspawn")
      ? undefined
      : "systemd-nspawn is missing (apt-get install systemd-container)",
  netns: () => (hasProgram("ip") ? undefined : "iproute2 is missing (apt-get install iproute2)"),
  busybox: () =>
    existsSync("/bin/busybox") ? undefined : "busybox-static is missing (apt-get install busybox-static)",
  debootstrap: () =>
    hasProgram("debootstrap") ? undefined : "debootstrap is missing (apt-get install debootstrap)",
  shellcheck: () =>
    hasProgram("shellcheck") ? undefined : "shellcheck is missing (apt-get install shellcheck)",
  "systemd-analyze": () =>
    hasProgram("systemd-analyze") ? undefined : "systemd-analyze is missing (apt-get install systemd)",
  setpriv: () => (hasProgram("setpriv") ? undefined : "setpriv is missing (apt-get install util-linux)"),
  faketime: () =>
    existsSync(FAKETIME_LIBRARY) ? undefined : "libfaketime is missing (apt-get install faketime)",
  promtool: () => (hasProgram("promtool") ? undefined : "promtool is missing (apt-get install prometheus)"),
  chromium: () => {
    try {
      accessSync(CHROMIUM, constants.X_OK);
      return undefined;
    } catch {
      return `Chromium is missing at ${CHROMIUM} (apt-get install chromium)`;
    }
  },
  postgres: () =>
    existsSync(POSTGRES_INITDB) ? undefined : "postgresql-15 is missing (apt-get install postgresql-15)",
  "open-files": () => {
    const { hard } = openFileLimits();
    return hard >= MANY_OPEN_FILES || mayRaiseHardLimits()
      ? undefined
      : `the open-file limit is ${hard} and this process may not raise it (no CAP_SYS_RESOURCE): run the tests with ulimit -n ${MANY_OPEN_FILES} or more`;
  },
};

/** The first unmet requirement as a sentence, or undefined when all are met. */
export function unmetRequirement(needs: readonly Requirement[]): string | undefined {
  for (const need of needs) {
    const reason = checks[need]();
    if (reason) return reason;
  }
  return undefined;
}
