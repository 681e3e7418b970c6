import type { Readable } from "node:stream";
import { type ErrorCode, GildError, spawnFailure } from "@gild/core";
import { ExecaError, execa } from "execa";

export interface HostResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface HostOptions {
  failureCode?: ErrorCode;
  allowExit?: readonly number[];
  /** Kill the program after this long; default 60 s, 0 for never (image builds take what they take). */
  timeoutMs?: number;
  cancelSignal?: AbortSignal;
  /**
   * Each line of output as the program prints it (stdout and stderr). The output is then not kept,
   * however long the program runs; the result's stderr is its last lines only.
   */
  onOutput?: (line: string) => void;
}

/** How many of a program's last stderr lines a failure reports. */
const STDERR_TAIL_LINES = 5;

/** Call `onLine` with each whole line of a stream (a line split across chunks arrives once). */
function forwardLines(stream: Readable | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let carry = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const parts = (carry + chunk).split("\n");
    carry = parts.pop() ?? "";
    for (const line of parts) if (line.length > 0) onLine(line);
  });
  stream.on("end", () => {
    if (carry.length > 0) onLine(carry);
    carry = "";
  });
}

/**
 * Run a host program with an argument array (never a shell string). A non-zero exit becomes a
 * GildError with `failureCode` and the program's last lines of stderr, unless `allowExit` lists it.
 */
export async function runHost(
  file: string,
  args: readonly string[],
  options: HostOptions = {},
): Promise<HostResult> {
  const streaming = options.onOutput !== undefined;
  const tail: string[] = [];
  try {
    const subprocess = execa(file, args, {
      stdin: "ignore",
      timeout: options.timeoutMs ?? 60_000,
      cancelSignal: options.cancelSignal,
      forceKillAfterDelay: 2_000,
      maxBuffer: 16 * 1024 * 1024,
      buffer: !streaming,
      reject: false,
    });
    if (options.onOutput) {
      const onOutput = options.onOutput;
      forwardLines(subprocess.stdout, onOutput);
      forwardLines(subprocess.stderr, (line) => {
        tail.push(line);
        if (tail.length > STDERR_TAIL_LINES) tail.shift();
        onOutput(line);
      });
    }
    const result = await subprocess;
    if (result.failed && result.exitCode === undefined) throw result;
    const exitCode = result.exitCode ?? -1;
    const out = streaming
      ? { stdout: "", stderr: tail.join("\n"), exitCode }
      : { stdout: String(result.stdout), stderr: String(result.stderr), exitCode };
    if (exitCode !== 0 && !(options.allowExit ?? []).includes(exitCode)) {
      const detail = out.stderr.trim().split("\n").slice(-STDERR_TAIL_LINES).join("\n");
      throw new GildError(
        options.failureCode ?? "GILD_INTERNAL",
        `${file} ${args.join(" ")}: exit code ${exitCode}${detail ? `: ${detail}` : ""}`,
      );
    }
    return out;
  } catch (err) {
    if (err instanceof GildError) throw err;
    const missing = spawnFailure(file, err);
    if (missing) throw missing;
    const reason =
      err instanceof ExecaError ? (err.isCanceled ? "cancelled" : err.shortMessage) : String(err);
    throw new GildError(options.failureCode ?? "GILD_INTERNAL", `${file} ${args.join(" ")}: ${reason}`, {
      cause: err,
    });
  }
}
