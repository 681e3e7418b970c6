import { readdir, readFile, readlink, stat } from "node:fs/promises";

// What /proc tells about processes that are not (or no longer) this process's children: identity by
// (pid, start time), so a reused pid is never mistaken for a container.

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ESRCH";
}

/** State letter and start time (clock ticks since boot, field 22) of a process, or null if it is gone. */
export async function readProcStat(pid: number): Promise<{ state: string; startTime: string } | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTime = fields[19];
  if (state === undefined || startTime === undefined) return null;
  return { state, startTime };
}

/** Pids of the processes in process group `pgid` (field 5 of /proc/<pid>/stat). */
export async function processGroupMembers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const text = await readFile(`/proc/${name}/stat`, "utf8").catch((err: unknown) => {
      if (isGone(err)) return "";
      throw err;
    });
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    if (fields[2] === String(pgid)) out.push(Number(name));
  }
  return out;
}

/** True while `pid` is a live process (not a zombie) that started at `startTime`, when given. */
export async function isProcessAlive(pid: number, startTime?: string): Promise<boolean> {
  const stat = await readProcStat(pid);
  if (stat === null || stat.state === "Z" || stat.state === "X") return false;
  return startTime === undefined || stat.startTime === startTime;
}

/** The argv of a process, or null if it is gone. */
export async function readCmdline(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    const argv = raw.split("\0");
    // Every argument ends with a NUL, so the split leaves one empty string at the end.
    if (argv.at(-1) === "") argv.pop();
    return argv;
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/** The environment of a process (NAME=value strings), or null if it is gone. */
export async function readEnviron(pid: number): Promise<Record<string, string> | null> {
  try {
    const raw = await readFile(`/proc/${pid}/environ`, "utf8");
    const env: Record<string, string> = {};
    for (const entry of raw.split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/** Direct children of a process (from every thread's children list). */
export async function childPids(pid: number): Promise<number[]> {
  let tasks: string[];
  try {
    tasks = await readdir(`/proc/${pid}/task`);
  } catch (err) {
    if (isGone(err)) return [];
    throw err;
  }
  const out = new Set<number>();
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch((err: unknown) => {
      if (isGone(err)) return "";
      throw err;
    });
    for (const part of text.trim().split(/\s+/)) if (part) out.add(Number(part));
  }
  return [...out].sort((a, b) => a - b);
}

async function pidNamespace(pid: number): Promise<string | null> {
  try {
    return await readlink(`/proc/${pid}/ns/pid`);
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/** (device, inode) of the program a process runs, or null if it is gone. */
async function executableId(pid: number): Promise<string | null> {
  try {
    const s = await stat(`/proc/${pid}/exe`);
    return `${s.dev}:${s.ino}`;
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/**
 * The container's PID 1 as the host sees it: the nearest descendant of nspawn that lives in another
 * pid namespace. Killing it kills everything in the container (the kernel ends a pid namespace with
 * its init). Null while nspawn is still setting up, or once the container is gone.
 *
 * nspawn makes that process by forking itself; until the fork has exec'd the payload it is a copy of
 * nspawn with nspawn's environment, in a half-made container (seen: an exec probe entering it then ran
 * without the container's $GILD_APP). By default only the payload counts, told apart from the copy by
 * the program it runs; `anyStage` also returns the copy (to kill a container still being set up).
 */
export async function findContainerInit(
  nspawnPid: number,
  options: { anyStage?: boolean } = {},
): Promise<number | null> {
  const own = await pidNamespace(nspawnPid);
  if (own === null) return null;
  const nspawnExe = options.anyStage ? null : await executableId(nspawnPid);
  if (!options.anyStage && nspawnExe === null) return null;
  // nspawn makes the container's init through an intermediate child during setup: look two levels deep.
  let level = await childPids(nspawnPid);
  for (let depth = 0; depth < 2 && level.length > 0; depth++) {
    const next: number[] = [];
    for (const child of level) {
      const ns = await pidNamespace(child);
      if (ns !== null && ns !== own && (await isProcessAlive(child))) {
        if (options.anyStage) return child;
        const exe = await executableId(child);
        // Not exec'd yet (or just gone): the container is not there yet.
        return exe !== null && exe !== nspawnExe ? child : null;
      }
      next.push(...(await childPids(child)));
    }
    level = next;
  }
  return null;
}

/** Send a signal, treating "no such process" as already done. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}
