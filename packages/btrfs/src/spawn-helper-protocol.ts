// The messages between a daemon and its spawn helper (spawn-helper.ts, spawn-helper-main.ts), on
// the IPC channel the daemon forks the helper with.

/** What the helper runs: this package's programs, and nothing else (scripts/lint-host-commands.mjs). */
export const HELPER_PROGRAMS: ReadonlySet<string> = new Set(["btrfs", "setpriv"]);

/** The most of a program's stdout, and of its stderr, that the helper sends back. */
export const OUTPUT_CAP_BYTES = 1024 * 1024;

export type HelperRequest =
  /**
   * Start a program; the socket sent with the message (if any) is its stdin, or its stdout when
   * `socket` says so (ToolLauncher's LaunchOptions: never both).
   */
  | { type: "run"; id: number; file: string; args: string[]; socket?: "stdin" | "stdout" }
  | { type: "kill"; id: number; signal: NodeJS.Signals };

/**
 * The helper listens (`ready`: nothing may be sent before it, or a socket sent with a run could be read
 * by the helper before it hands it on), or how a program ended (ToolExit in @gild/btrfs).
 */
export type HelperReply = { type: "ready" } | HelperExit;

export interface HelperExit {
  type: "exit";
  id: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  startError?: { code: string; message: string };
}
