import { type ErrorCode, GildError, spawnFailure } from "@gild/core";
import { ExecaError, execa } from "execa";
import { LaunchedToolError, launchedResult, type ToolLauncher } from "./launcher.js";

export interface ToolResult {
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  cancelSignal?: AbortSignal;
  /** Error code for a non-zero exit when `classify` does not pick one. */
  failureCode?: ErrorCode;
  /** Map a failed run's stderr to a more precise code. */
  classify?: (stderr: string) => ErrorCode | undefined;
  /** Called with each line of output as it arrives (long-running builds). */
  onOutput?: (line: string) => void;
  /** Start it from there, not from this process (launcher.ts); not with onOutput. */
  launcher?: ToolLauncher;
}

/** Codes for the btrfs-progs failures gild tells apart; everything else is GILD_BTRFS_FAILED. */
export function classifyBtrfsStderr(stderr: string): ErrorCode | undefined {
  if (/No space left on device|ENOSPC/i.test(stderr)) return "GILD_NO_SPACE";
  if (
    /cannot find parent subvolume|could not find parent subvolume|parent subvol is not reachable/i.test(
      stderr,
    )
  ) {
    return "GILD_PARENT_MISSING";
  }
  if (/File exists/i.test(stderr)) return "GILD_SUBVOLUME_EXISTS";
  if (/not a btrfs|Not a Btrfs/i.test(stderr)) return "GILD_NOT_BTRFS";
  return undefined;
}

/**
 * Run a host program with an argument array (never a shell string) and collect its output; a
 * non-zero exit becomes a GildError carrying the program's stderr.
 */
export async function runTool(
  file: string,
  args: readonly string[],
  options: ToolOptions = {},
): Promise<ToolResult> {
  if (options.launcher && !options.onOutput) {
    const tool = options.launcher.start(file, args, { stdin: false });
    return launchedResult(file, tool, { signal: options.cancelSignal, forceKillAfterMs: 5_000 }).catch(
      (err: unknown) => {
        throw toolError(file, args, err, options);
      },
    );
  }
  const subprocess = execa(file, args, {
    stdin: "ignore",
    cancelSignal: options.cancelSignal,
    forceKillAfterDelay: 5_000,
    lines: false,
    maxBuffer: 32 * 1024 * 1024,
    reject: true,
  });
  if (options.onOutput) {
    const onOutput = options.onOutput;
    const forward = (chunk: Buffer | string) => {
      for (const line of chunk.toString().split("\n")) if (line.length > 0) onOutput(line);
    };
    subprocess.stdout?.on("data", forward);
    subprocess.stderr?.on("data", forward);
  }
  try {
    const result = await subprocess;
    return { stdout: String(result.stdout), stderr: String(result.stderr) };
  } catch (err) {
    throw toolError(file, args, err, options);
  }
}

/** The GildError for a failed host program run. */
export function toolError(
  file: string,
  args: readonly string[],
  err: unknown,
  options: ToolOptions = {},
): GildError {
  const missing = spawnFailure(file, err);
  if (missing) return missing;
  if (err instanceof ExecaError || err instanceof LaunchedToolError) {
    const stderr = String(err.stderr ?? "").trim();
    const code =
      options.classify?.(stderr) ??
      (file === "btrfs" ? classifyBtrfsStderr(stderr) : undefined) ??
      options.failureCode;
    const cancelled = err instanceof ExecaError ? err.isCanceled : options.cancelSignal?.aborted === true;
    const reason = cancelled
      ? "cancelled"
      : err.exitCode !== undefined
        ? `exit code ${err.exitCode}`
        : (err.signal ?? (err instanceof ExecaError ? err.shortMessage : err.message));
    const detail = stderr.split("\n").slice(-5).join("\n");
    return new GildError(
      code ?? "GILD_BTRFS_FAILED",
      `${file} ${args.join(" ")}: ${reason}${detail ? `: ${detail}` : ""}`,
      {
        cause: err,
      },
    );
  }
  return new GildError(
    options.failureCode ?? "GILD_BTRFS_FAILED",
    `${file} ${args.join(" ")}: ${String(err)}`,
    {
      cause: err,
    },
  );
}
