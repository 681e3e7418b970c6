import { readFileSync } from "node:fs";
import { run } from "./host-commands.js";

/** What the "open-files" requirement promises: room for a thousand sockets on each side and more. */
export const MANY_OPEN_FILES = 4096;

/** CAP_SYS_RESOURCE (capability 24): lets a process raise a hard resource limit. */
const CAP_SYS_RESOURCE = 24n;

/** Whether this process may raise its hard limits (root in a container often may not). */
export function mayRaiseHardLimits(): boolean {
  const line = readFileSync("/proc/self/status", "utf8")
    .split("\n")
    .find((l) => l.startsWith("CapEff:"));
  return line !== undefined && ((BigInt(`0x${line.slice(7).trim()}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

/** The soft and hard open-file limits of a process (default this one), from /proc/<pid>/limits. */
export function openFileLimits(pid: number | "self" = "self"): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  const [soft, hard] = (line?.split(/\s{2,}/) ?? []).slice(1, 3);
  const value = (v: string | undefined) => (v === "unlimited" ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: value(soft), hard: value(hard) };
}

/**
 * Make sure this process may hold `needed` open files, raising its limits with prlimit(1) when they
 * are lower: Node.js has no setrlimit, and raising the hard limit needs root (CAP_SYS_RESOURCE).
 * Processes started afterwards (a controller the fleet spawns) inherit the raised limits.
 */
export async function ensureOpenFileLimit(needed: number): Promise<{ soft: number; hard: number }> {
  const current = openFileLimits();
  if (current.soft >= needed) return current;
  if (current.hard < needed && !mayRaiseHardLimits())
    throw new Error(
      `this process may hold ${current.hard} open files at most and cannot raise that (no CAP_SYS_RESOURCE); ${needed} are needed: raise the limit first (ulimit -n ${needed})`,
    );
  const hard = Math.max(current.hard, needed);
  await run("prlimit", ["--pid", String(process.pid), `--nofile=${needed}:${hard}`]);
  const raised = openFileLimits();
  if (raised.soft < needed)
    throw new Error(`the open-file limit is ${raised.soft} after prlimit; ${needed} are needed`);
  return raised;
}
