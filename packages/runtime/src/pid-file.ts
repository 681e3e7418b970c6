import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** What the process driver records of one container, so that a restarted agent can find it again. */
export interface PidRecord {
  /** systemd-nspawn's pid. */
  pid: number;
  /** Its start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, its identity. */
  startTime: string;
  machine: string;
  app: string;
  generation: number;
  rootfs: string;
  logFile: string;
  stopTimeoutMs: number;
  /** Epoch milliseconds. */
  startedAt: number;
}

const SUFFIX = ".json";

export function pidFilePath(runDir: string, machine: string): string {
  return join(runDir, `${machine}${SUFFIX}`);
}

export async function ensureRunDir(runDir: string): Promise<void> {
  await mkdir(runDir, { recursive: true, mode: 0o700 });
}

/** Write atomically (temp file + rename), so a crash never leaves half a record. */
export async function writePidFile(runDir: string, record: PidRecord): Promise<void> {
  const path = pidFilePath(runDir, record.machine);
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

export async function removePidFile(runDir: string, machine: string): Promise<void> {
  await rm(pidFilePath(runDir, machine), { force: true });
}

function isPidRecord(value: unknown): value is PidRecord {
  const r = value as Partial<PidRecord> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    Number.isSafeInteger(r.pid) &&
    (r.pid as number) > 1 &&
    typeof r.startTime === "string" &&
    /^\d+$/.test(r.startTime) &&
    typeof r.machine === "string" &&
    typeof r.app === "string" &&
    Number.isSafeInteger(r.generation) &&
    typeof r.rootfs === "string" &&
    typeof r.logFile === "string" &&
    Number.isSafeInteger(r.stopTimeoutMs) &&
    typeof r.startedAt === "number"
  );
}

/** One pid file: the record, "invalid" when unreadable or malformed, or null when there is none. */
export async function readPidFile(path: string): Promise<PidRecord | "invalid" | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    return isPidRecord(parsed) ? parsed : "invalid";
  } catch {
    // Not JSON at all (a torn write from before writes were atomic, or a stranger's file).
    return "invalid";
  }
}

/** Paths of every pid file in the run directory. */
export async function listPidFiles(runDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(runDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((name) => name.endsWith(SUFFIX))
    .sort()
    .map((name) => join(runDir, name));
}
