import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { readProcStat } from "./process-record.js";

/** One live process as /proc shows it. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  startTicks: number;
  comm: string;
  /** Empty for kernel threads. */
  cmdline: string[];
  /** "net:[inode]", or undefined when it could not be read (gone meanwhile). */
  netns: string | undefined;
  /** "mnt:[inode]". */
  mntns: string | undefined;
}

/** One line of a mountinfo file. */
export interface MountEntry {
  id: number;
  /** major:minor of the filesystem. */
  device: string;
  /** The directory of that filesystem mounted here. */
  root: string;
  mountPoint: string;
  /** The mount source: "/dev/loop3" for a pool. */
  source: string;
  fstype: string;
}

const gone = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ESRCH";
};

/** readlink, or undefined when the process (or the link) is gone or not readable. */
export function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch (err) {
    if (gone(err) || (err as NodeJS.ErrnoException).code === "EACCES") return undefined;
    throw err;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if (gone(err) || (err as NodeJS.ErrnoException).code === "EACCES") return undefined;
    throw err;
  }
}

/** Live processes (no zombies, no kernel threads), read once each. */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const stat = readProcStat(pid);
    if (!stat || stat.state === "Z" || stat.state === "X") continue;
    const raw = readText(`/proc/${pid}/cmdline`);
    // Kernel threads have no command line; pid 2 is their parent.
    if (raw === undefined || raw === "" || stat.ppid === 2) continue;
    out.push({
      pid,
      ppid: stat.ppid,
      pgrp: stat.pgrp,
      startTicks: stat.startTicks,
      comm: readText(`/proc/${pid}/comm`)?.trim() ?? "?",
      cmdline: raw.replace(/\0$/, "").split("\0"),
      netns: linkTarget(`/proc/${pid}/ns/net`),
      mntns: linkTarget(`/proc/${pid}/ns/mnt`),
    });
  }
  return out;
}

/** This process and every ancestor of it: never to be stopped by the fleet's undo. */
export function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  for (let pid = process.pid; pid > 1 && !out.has(pid); ) {
    out.add(pid);
    const stat = readProcStat(pid);
    if (!stat) break;
    pid = stat.ppid;
  }
  return out;
}

/** Files a process has open, mapped, or runs (fd targets, maps paths, exe), as this namespace names them. */
export function openPaths(pid: number): string[] {
  const out = new Set<string>();
  const exe = linkTarget(`/proc/${pid}/exe`);
  if (exe) out.add(exe);
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    if (!gone(err) && (err as NodeJS.ErrnoException).code !== "EACCES") throw err;
  }
  for (const fd of fds) {
    const target = linkTarget(`/proc/${pid}/fd/${fd}`);
    if (target?.startsWith("/")) out.add(target);
  }
  for (const line of (readText(`/proc/${pid}/maps`) ?? "").split("\n")) {
    // address perms offset dev inode path: the path starts at the first "/" after the inode.
    const slash = line.indexOf("/");
    if (slash >= 0) out.add(line.slice(slash));
  }
  return [...out].map((p) => p.replace(/ \(deleted\)$/, ""));
}

/** The working directory and root of a process (undefined parts when it is gone). */
export function workingDirs(pid: number): string[] {
  return [linkTarget(`/proc/${pid}/cwd`), linkTarget(`/proc/${pid}/root`)].filter(
    (p): p is string => p !== undefined,
  );
}

const decodeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/**
 * The mounts a process sees (/proc/<pid>/mountinfo: only those reachable from its root, so a container
 * does not show what lies outside its root); [] when it is gone.
 */
export function mountsOf(pid: number | "self"): MountEntry[] {
  const text = readText(`/proc/${pid}/mountinfo`) ?? "";
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const [head, tail] = line.split(" - ");
    if (!head || !tail) continue;
    const fields = head.split(" ");
    const [fstype, source] = tail.split(" ");
    if (fields[4] === undefined || fstype === undefined || source === undefined) continue;
    out.push({
      id: Number(fields[0]),
      device: fields[2] ?? "",
      root: decodeOctal(fields[3] ?? ""),
      mountPoint: decodeOctal(fields[4]),
      source: decodeOctal(source),
      fstype,
    });
  }
  return out;
}

// USER_HZ: the unit of /proc/<pid>/stat start times; 100 on every architecture Linux builds gild for.
const TICKS_PER_SECOND = 100;

/** When a process started (ms since the epoch), from its start time in clock ticks since boot. */
export function startedAtMs(startTicks: number): number {
  const btime = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1];
  return Number(btime) * 1000 + (startTicks * 1000) / TICKS_PER_SECOND;
}

/** "pid 123 (node /x/bin.js controller run ...)": who a process is, for messages. */
export function describeProcess(p: Pick<ProcInfo, "pid" | "comm" | "cmdline">): string {
  const command = p.cmdline.length > 0 ? p.cmdline.join(" ") : p.comm;
  return `pid ${p.pid} (${command.length > 160 ? `${command.slice(0, 157)}...` : command})`;
}

/** Whether path is dir or below it. */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/+$/, "")}/`);
}
