import { readdirSync, readFileSync, readlinkSync, statfsSync, statSync } from "node:fs";
import { join } from "node:path";
import { run } from "./host-commands.js";

// What fault tests look at from outside the processes under test: /proc, a host's pool and state dir.

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ESRCH";
}

function pids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** A process's argv, or undefined when it is gone. */
export function processArgv(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return text === "" ? [] : text.replace(/\0$/, "").split("\0");
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

/** Is `ancestor` the parent of `pid`, or the parent of its parent, and so on? */
function isBelow(pid: number, ancestor: number): boolean {
  let parent = parentOf(pid);
  // A bounded walk: a pid may be reused while it runs.
  for (let depth = 0; parent !== undefined && parent > 1 && depth < 64; depth++) {
    if (parent === ancestor) return true;
    parent = parentOf(parent);
  }
  return false;
}

/**
 * Live processes below `ancestor` (its children, and theirs: the agent's btrfs programs run under
 * its spawn helper) whose argv starts with `prefix` (e.g. ["btrfs", "receive"]).
 */
export function descendantProcesses(ancestor: number, prefix: readonly string[]): number[] {
  return pids().filter((pid) => {
    if (!isBelow(pid, ancestor)) return false;
    const argv = processArgv(pid);
    return argv !== undefined && prefix.every((word, i) => argv[i] === word);
  });
}

/** Whether a process exists (a zombie counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch (err) {
    if (isGone(err)) return false;
    throw err;
  }
}

function environ(pid: number): Map<string, string> | undefined {
  try {
    const env = new Map<string, string>();
    for (const entry of readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
    return env;
  } catch (err) {
    // Gone, or a process this sandbox does not let even root read (its PID 1).
    if (isGone(err) || (err as NodeJS.ErrnoException).code === "EACCES") return undefined;
    throw err;
  }
}

function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch (err) {
    if (isGone(err)) return undefined;
    throw err;
  }
}

/**
 * The generations of `app` that have processes running in the network namespace `netns` (a fleet
 * host), from the environment gild gives every container (GILD_APP, GILD_GENERATION), sorted.
 */
export function runningGenerations(netns: string, app: string): number[] {
  const ns = netnsInode(`/run/netns/${netns}`);
  const out = new Set<number>();
  for (const pid of pids()) {
    const env = environ(pid);
    if (env?.get("GILD_APP") !== app) continue;
    if (netnsInode(`/proc/${pid}/ns/net`) !== ns) continue;
    const generation = Number(env.get("GILD_GENERATION"));
    if (generation > 0) out.add(generation);
  }
  return [...out].sort((a, b) => a - b);
}

/** An agent's journal entry (<state dir>/journal/*.json), as the agent wrote it. */
export interface JournalFile {
  file: string;
  commandId: string;
  kind: string;
  state: string;
}

/** Every entry of an agent's command journal. */
export function journalEntries(stateDir: string): JournalFile[] {
  const dir = join(stateDir, "journal");
  return readdirSync(dir)
    .filter((name) => name.endsWith(".json"))
    .map((name) => {
      const entry = JSON.parse(readFileSync(join(dir, name), "utf8")) as Omit<JournalFile, "file">;
      return { file: join(dir, name), commandId: entry.commandId, kind: entry.kind, state: entry.state };
    });
}

/** The generation `current` points at in a host pool's app dir, or null. */
export function currentGeneration(poolPath: string, app: string): number | null {
  try {
    return Number(readlinkSync(join(poolPath, "apps", app, "current")));
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/** Free bytes of the filesystem `dir` is on, for an unprivileged writer (what ENOSPC is about). */
export function freeBytes(dir: string): number {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
}

/**
 * Fill the filesystem `dir` is on with preallocated files (never compressed, unlike written zeros on
 * a compress=zstd btrfs) until at most `leaveBytes` are free; returns the files made.
 */
export async function fillFilesystem(dir: string, leaveBytes: number): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < 64; i++) {
    const want = freeBytes(dir) - leaveBytes;
    if (want < 1024 * 1024) break;
    const file = join(dir, `gild-test-filler-${i}`);
    let size = want;
    for (;;) {
      try {
        await run("fallocate", ["-l", String(size), file]);
        files.push(file);
        break;
      } catch (err) {
        if (!/No space left on device/.test((err as Error).message)) throw err;
        // btrfs keeps some space for metadata: ask for less until it fits.
        size = Math.floor(size / 2);
        if (size < 1024 * 1024) return files;
      }
    }
  }
  return files;
}
