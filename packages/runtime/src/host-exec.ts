import { type ErrorCode, GildError, spawnFailure } from "@gild/core";
import { ExecaError, execa } from "execa";

export interface HostResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Run a host program with an argument array (never a shell string). A non-zero exit becomes a
 * GildError with `failureCode` and the program's last lines of stderr, unless `allowExit` lists it.
 */
export async function runHost(
  file: string,
  args: readonly string[],
  options: { failureCode?: ErrorCode; allowExit?: readonly number[]; timeoutMs?: number } = {},
): Promise<HostResult> {
  try {
    const result = await execa(file, args, {
      stdin: "ignore",
      timeout: options.timeoutMs ?? 60_000,
      forceKillAfterDelay: 2_000,
      maxBuffer: 16 * 1024 * 1024,
      reject: false,
    });
    if (result.failed && result.exitCode === undefined) throw result;
    const exitCode = result.exitCode ?? -1;
    const out = { stdout: String(result.stdout), stderr: String(result.stderr), exitCode };
    if (exitCode !== 0 && !(options.allowExit ?? []).includes(exitCode)) {
      const detail = out.stderr.trim().split("\n").slice(-5).join("\n");
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
    const reason = err instanceof ExecaError ? err.shortMessage : String(err);
    throw new GildError(options.failureCode ?? "GILD_INTERNAL", `${file} ${args.join(" ")}: ${reason}`, {
      cause: err,
    });
  }
}
