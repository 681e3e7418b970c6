import { GildError, spawnFailure } from "@gild/core";
import { execa } from "execa";
import { processGroupMembers, readEnviron, signalProcess } from "./proc.js";
import type { ExecResult } from "./types.js";

const MAX_OUTPUT = 64 * 1024;
// After the command was killed, how long nsenter gets to reap it and exit before it is killed too.
const NSENTER_GRACE_MS = 1_000;

/** SIGKILL every process of a group: a negative pid names the group. */
const killGroup = (pgid: number) => signalProcess(-pgid, "SIGKILL");

/** SIGKILL every process of a group but its leader. */
async function killGroupButLeader(pgid: number): Promise<void> {
  for (const pid of await processGroupMembers(pgid)) if (pid !== pgid) signalProcess(pid, "SIGKILL");
}

/**
 * Run `argv` inside a running container: nsenter into every namespace, root and working directory of
 * the container's init, with the init's own environment. nsenter runs in its own process group, which
 * the command it forks into the container's pid namespace keeps: that is how a timeout finds it.
 */
export async function execInContainer(
  initPid: number,
  argv: string[],
  timeoutMs: number,
): Promise<ExecResult> {
  if (argv.length === 0 || argv.some((arg) => typeof arg !== "string" || arg.includes("\0"))) {
    throw new GildError("GILD_INVALID_SPEC", "exec: the command must be a non-empty array of strings");
  }
  const env = await readEnviron(initPid);
  if (env === null) throw new GildError("GILD_NOT_FOUND", "exec: the container is not running");
  // With `env` given, the program is looked up on that PATH: the container's, which (set by nspawn)
  // holds /usr/bin, where util-linux installs nsenter on the host too.
  const subprocess = execa("nsenter", [`--target=${initPid}`, "--all", "--", ...argv], {
    stdin: "ignore",
    all: true,
    env,
    extendEnv: false,
    detached: true,
    cleanup: false,
    reject: false,
    maxBuffer: MAX_OUTPUT,
    stripFinalNewline: false,
  });
  let timedOut = false;
  let finished = false;
  let lastResort: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    const pgid = subprocess.pid;
    if (pgid === undefined) return;
    // Kill the command, not nsenter: nsenter must live to reap it. A command orphaned by nsenter's
    // death is reparented to the host's init, and a pid namespace only ends once all of its processes
    // are reaped, so its zombie would hold up the container's stop (measured: 1.6 s here).
    killGroupButLeader(pgid)
      .catch(() => killGroup(pgid))
      .then(() => {
        if (!finished) lastResort = setTimeout(() => killGroup(pgid), NSENTER_GRACE_MS);
      });
  }, timeoutMs);
  const result = await subprocess;
  finished = true;
  clearTimeout(timer);
  clearTimeout(lastResort);
  if (result.failed && result.exitCode === undefined && !timedOut && !result.isMaxBuffer && !result.signal) {
    const missing = spawnFailure("nsenter", result);
    if (missing) throw missing;
    throw new GildError("GILD_INTERNAL", `exec in container: ${result.shortMessage}`, { cause: result });
  }
  const output = String(result.all ?? "").trimEnd();
  if (timedOut) {
    return { exitCode: null, output: `${output}${output ? "\n" : ""}(timed out after ${timeoutMs} ms)` };
  }
  return { exitCode: result.exitCode ?? null, output };
}
