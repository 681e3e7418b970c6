import { spawn } from "node:child_process";
import { constants } from "node:os";

export interface CaptureResult {
  /** Exit code; 128 + signal number when a signal ended it. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CaptureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** Kill it with SIGKILL and reject after this long; default 60 s, 0 for none. */
  timeoutMs?: number;
}

/**
 * Run a program with an argument array (never a shell string) and collect its output. A non-zero exit
 * is a value, not an error: callers that want to fail on it check `code`.
 */
export function capture(
  file: string,
  args: readonly string[],
  options: CaptureOptions = {},
): Promise<CaptureResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      env: options.env,
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    const timeoutMs = options.timeoutMs ?? 60_000;
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, timeoutMs)
        : undefined;
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${file}: ${error.message}`, { cause: error }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      if (timedOut) {
        reject(new Error(`${file} ${args.join(" ")} timed out after ${timeoutMs} ms\n${stderr}`.trimEnd()));
        return;
      }
      resolve({ code: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0), stdout, stderr });
    });
    // A program that exits without reading its input makes the write fail with EPIPE: not an error here.
    child.stdin.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE") reject(error);
    });
    child.stdin.end(options.input ?? "");
  });
}
