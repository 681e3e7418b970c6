import type { Readable, Writable } from "node:stream";

/**
 * Starts host programs for this package somewhere other than the calling process. Node (libuv)
 * starts every child with fork(): the kernel copies the caller's page tables and write-protects each
 * of its pages, so after a spawn every page the caller writes again costs it a fault. For a daemon
 * with a large heap and warm transfer buffers that is the most expensive part of a small pull
 * (measured on a 2-core VM: 15 ms to write a 4 MiB buffer again after one spawn, 0.4 ms without).
 * The agent's pool has one (SpawnHelper, spawn-helper.ts) that starts them from a small helper
 * process instead. Without one, the package spawns them itself.
 */
export interface ToolLauncher {
  start(file: string, args: readonly string[], options: LaunchOptions): LaunchedTool;
}

/**
 * Which of the program's standard streams the caller holds: its stdin to write (a receive), or its
 * stdout to read (a send), never both. Otherwise stdin is empty and stdout is collected (capped).
 */
export interface LaunchOptions {
  stdin: boolean;
  stdout?: boolean;
}

/** A program a launcher started. */
export interface LaunchedTool {
  /** Its standard input when asked for (`stdin: true`): end it to give the program end of file. */
  readonly stdin: Writable | null;
  /** Its standard output when asked for (`stdout: true`), ending when the program closes it. */
  readonly stdout: Readable | null;
  /** Resolves when it is gone, however it ended; never rejects. */
  readonly exited: Promise<ToolExit>;
  /** Send it a signal (nothing once it exited). */
  kill(signal: NodeJS.Signals): void;
}

/** How a launched program ended, with its output (each capped by the launcher). */
export interface ToolExit {
  /** Its exit status; null when a signal ended it, or it never started. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Why it never started (an errno code: ENOENT when the program is not installed), or the launcher's failure. */
  startError?: { code: string; message: string };
}

/**
 * A launched program that did not exit 0: what toolError and receive read of a failed run, as they
 * read execa's error of a program this package started itself.
 */
export class LaunchedToolError extends Error {
  /** The errno code when it never started (spawnFailure reads it). */
  readonly code: string | undefined;
  readonly exitCode: number | undefined;
  readonly signal: NodeJS.Signals | undefined;
  readonly stderr: string;

  constructor(file: string, exit: ToolExit) {
    super(
      exit.startError
        ? `${file}: ${exit.startError.message}`
        : exit.signal
          ? `${file} was killed with ${exit.signal}`
          : `${file} exited with ${exit.exitCode}`,
    );
    this.name = "LaunchedToolError";
    this.code = exit.startError?.code;
    this.exitCode = exit.exitCode ?? undefined;
    this.signal = exit.signal ?? undefined;
    this.stderr = exit.stderr;
  }
}

/**
 * A launched program's end as execa's: its output when it exited 0, else a LaunchedToolError. A
 * cancel (also one before it started) sends it SIGTERM, and SIGKILL `forceKillAfterMs` later, as
 * execa's cancelSignal and forceKillAfterDelay do.
 */
export async function launchedResult(
  file: string,
  tool: LaunchedTool,
  cancel: { signal?: AbortSignal | undefined; forceKillAfterMs: number },
): Promise<{ stdout: string; stderr: string }> {
  const { signal } = cancel;
  let forceKill: NodeJS.Timeout | undefined;
  const onAbort = () => {
    tool.kill("SIGTERM");
    forceKill = setTimeout(() => tool.kill("SIGKILL"), cancel.forceKillAfterMs);
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const exit = await tool.exited;
    if (exit.exitCode === 0 && !exit.startError) return { stdout: exit.stdout, stderr: exit.stderr };
    throw new LaunchedToolError(file, exit);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    clearTimeout(forceKill);
  }
}
