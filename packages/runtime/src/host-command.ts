import { existsSync } from "node:fs";
import { execa } from "execa";

/** What running an operator's command on the host came to. */
export interface HostCommandOutcome {
  /** The exit code; -1 when the program did not exit by itself (killed at its timeout, or not started). */
  exitCode: number;
  /** The last bytes of its output, stdout and stderr interleaved as they came. */
  outputTail: string;
  /** After it, the host says a reboot is required (Debian's /run/reboot-required). */
  rebootRequired: boolean;
  timedOut: boolean;
}

export interface HostCommandOptions {
  /** Kill the program's whole process group after this long. */
  timeoutMs: number;
  /** Keep this many of the output's last bytes. */
  maxOutputBytes: number;
  /** Where the host flags a required reboot [/run/reboot-required]; tests point it elsewhere. */
  rebootRequiredFile?: string;
}

/** After SIGTERM at the timeout, the group has this long before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/** The last `max` bytes of a stream of chunks. */
class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.max && this.chunks.length > 1) {
      this.size -= (this.chunks.shift() as Buffer).length;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString("utf8");
  }
}

/** Signal a process group, ignoring one that is gone already. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/**
 * Run the operator's maintenance command on the host itself (a host-update job's command), as an
 * argv: a shell text arrives as ["/bin/sh", "-c", text], the operator's own program for the shell;
 * gild builds none. The one place an operator's program is started (scripts/lint-host-commands.mjs).
 * It runs in a process group of its own, so a timeout stops what it started too (apt-get under sh),
 * without a terminal or input: DEBIAN_FRONTEND=noninteractive keeps apt from waiting on a prompt.
 * Any exit is an outcome, not an error: the caller decides.
 */
export async function runHostCommand(
  argv: readonly string[],
  options: HostCommandOptions,
): Promise<HostCommandOutcome> {
  const [file, ...args] = argv;
  if (file === undefined || file === "") throw new Error("runHostCommand needs a program");
  const tail = new OutputTail(options.maxOutputBytes);
  const child = execa(file, args, {
    stdin: "ignore",
    detached: true,
    buffer: false,
    reject: false,
    all: true,
    encoding: "buffer",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  });
  child.all?.on("data", (chunk: Buffer) => tail.push(chunk));
  let timedOut = false;
  let force: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid, "SIGTERM");
    force = setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
  }, options.timeoutMs);
  const result = await child;
  clearTimeout(timer);
  clearTimeout(force);
  let outputTail = tail.text();
  if (result.exitCode === undefined) {
    const why = timedOut
      ? `[gild: killed after ${Math.round(options.timeoutMs / 1000)} s]`
      : `[gild: ${result.shortMessage}]`;
    outputTail = `${outputTail}${outputTail.endsWith("\n") || outputTail === "" ? "" : "\n"}${why}`;
  }
  return {
    exitCode: result.exitCode ?? -1,
    outputTail,
    rebootRequired: existsSync(options.rebootRequiredFile ?? "/run/reboot-required"),
    timedOut,
  };
}
