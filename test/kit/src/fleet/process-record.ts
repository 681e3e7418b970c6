import { spawn } from "node:child_process";
import { appendFileSync, closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { waitFor } from "../wait.js";

/**
 * A process the fleet started, identified by pid plus what makes a reused pid tell itself apart: its
 * start time (clock ticks since boot, /proc/<pid>/stat field 22) and an argument its command line holds.
 */
export interface ProcessRecord {
  /** "controller" or "agent:<host name>". */
  role: string;
  pid: number;
  startTicks: number;
  /** An argument unique to this process (the agent's state dir, the controller's data dir). */
  marker: string;
}

interface ProcStat {
  state: string;
  ppid: number;
  pgrp: number;
  startTicks: number;
}

/** /proc/<pid>/stat, or undefined when there is no such process. */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH")
      return undefined;
    throw err;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    state: fields[0] ?? "?",
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    startTicks: Number(fields[19]),
  };
}

/** The command line, or undefined when the process is gone; empty for a moment while it execs. */
function readCmdline(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return text === "" ? [] : text.split("\0");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH")
      return undefined;
    throw err;
  }
}

/**
 * True while the process is alive and still the one recorded (same pid and start time, its command line
 * holds the marker). A zombie counts as gone: PID 1 on some machines (this one) never reaps orphans, so
 * a killed detached process can stay a zombie for good. An empty command line is an exec in progress
 * (nsenter becoming node, measured: about 1 ms), still the recorded process.
 */
export function isRunning(record: ProcessRecord): boolean {
  const stat = readProcStat(record.pid);
  if (!stat || stat.state === "Z" || stat.state === "X") return false;
  if (stat.startTicks !== record.startTicks) return false;
  const cmdline = readCmdline(record.pid);
  return cmdline !== undefined && (cmdline.length === 0 || cmdline.includes(record.marker));
}

/**
 * Signal the recorded process if it still is that process, checked on its command line (waiting out an
 * exec in progress); returns whether a signal was sent.
 */
export function signalRecorded(record: ProcessRecord, signal: NodeJS.Signals): boolean {
  if (!isRunning(record)) return false;
  waitSync(() => readCmdline(record.pid)?.length !== 0, 1_000);
  if (!isRunning(record) || !readCmdline(record.pid)?.includes(record.marker)) return false;
  try {
    process.kill(record.pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/** Live members of the process group the recorded process leads (children it left behind included). */
export function groupMembers(record: ProcessRecord): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const stat = readProcStat(pid);
    // Started no earlier than the leader: a process group id reused after the leader's group died is not ours.
    if (stat && stat.pgrp === record.pid && stat.state !== "Z" && stat.startTicks >= record.startTicks)
      out.push(pid);
  }
  return out;
}

/** Live (non-zombie) children of this process whose command name is one of `names`. */
export function ownChildrenNamed(names: readonly string[]): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (!stat || stat.ppid !== process.pid || stat.state === "Z") continue;
    let comm: string;
    try {
      comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
    } catch {
      continue; // exited between the two reads
    }
    if (names.includes(comm)) out.push(Number(entry));
  }
  return out;
}

/** Wait until none of the records runs, with a deadline. */
export async function waitGone(records: readonly ProcessRecord[], timeoutMs: number): Promise<void> {
  if (records.length === 0) return;
  await waitFor(() => records.every((r) => !isRunning(r)), {
    timeoutMs,
    intervalMs: 25,
    what: `exit of ${records.map((r) => `${r.role} (pid ${r.pid})`).join(", ")}`,
  });
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Block for ms milliseconds: only for undo code that must stay synchronous (exit handlers). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** Poll a condition synchronously until it holds or the deadline passes; returns whether it held. */
export function waitSync(check: () => boolean, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() >= deadline) return false;
    sleepSync(25);
  }
}

/** True while a pid exists and is not a zombie (for processes the fleet did not record: netns leftovers). */
export function pidAlive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

export interface DetachedSpawn {
  role: string;
  marker: string;
  file: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
}

/**
 * Start a program in its own process group with output appended to a log file, so it outlives the
 * process that started it; returns its record.
 */
export function spawnDetached(options: DetachedSpawn): ProcessRecord {
  appendFileSync(
    options.logFile,
    `--- ${new Date().toISOString()} starting: ${options.file} ${options.args.join(" ")}\n`,
  );
  const fd = openSync(options.logFile, "a");
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(options.file, [...options.args], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: options.env,
    });
  } finally {
    closeSync(fd);
  }
  // An exec failure arrives as an event; it goes to the log, where the caller's wait finds it.
  child.once("error", (err) => appendFileSync(options.logFile, `--- spawn failed: ${err.message}\n`));
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${options.file} (see ${options.logFile})`);
  const stat = readProcStat(pid);
  if (!stat) throw new Error(`${options.role} (pid ${pid}) vanished right after it was started`);
  return { role: options.role, pid, startTicks: stat.startTicks, marker: options.marker };
}
