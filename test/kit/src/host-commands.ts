import { execFile, execFileSync } from "node:child_process";

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Run a host program with an argument array (never a shell string); rejects with its stderr. */
export function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 0, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = stderr.toString().trim() || stdout.toString().trim();
          reject(
            new Error(`${file} ${args.join(" ")} failed: ${err.message}${detail ? `\n${detail}` : ""}`, {
              cause: err,
            }),
          );
          return;
        }
        resolve({ stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
  });
}

/** Synchronous variant for cleanups that run in exit handlers. */
export function runSync(file: string, args: readonly string[]): string {
  return execFileSync(file, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
}

/** Like runSync, but reports failure as a value instead of throwing (best-effort undo steps). */
export function tryRunSync(file: string, args: readonly string[]): { ok: boolean; output: string } {
  try {
    return { ok: true, output: runSync(file, args) };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, output: e.stderr?.toString() || e.message };
  }
}
