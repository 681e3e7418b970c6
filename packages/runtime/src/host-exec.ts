import { type ErrorCode, GildError } from "@gild/core";
import { ExecaError, execa } from "execa";

/** Debian packages that provide the host programs the runtime runs, for hints. */
const PACKAGE_OF: Record<string, string> = {
  "systemd-nspawn": "systemd-container",
  "systemd-run": "systemd",
  systemctl: "systemd",
  nsenter: "util-linux",
};

/** A failure to start a program as a coded error: a missing program says what to install. */
export function spawnFailure(file: string, err: unknown): GildError | undefined {
  const code = (err as { code?: string }).code;
  if (code !== "ENOENT") return undefined;
  const pkg = PACKAGE_OF[file];
  return new GildError("GILD_TOOL_MISSING", `${file} is not installed`, {
    hint: pkg ? `apt-get install ${pkg}` : `install ${file}`,
    cause: err,
  });
}

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
