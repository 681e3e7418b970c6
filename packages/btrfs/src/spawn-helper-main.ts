// The spawn helper's process (spawn-helper.ts): a small child that starts this package's programs
// for a daemon, so that the daemon's own large address space is never forked. It takes requests over
// the IPC channel it was forked with and answers each with how the program ended. When its parent is
// gone (the channel closes: an exit, or kill -9), it kills what it started and exits.
import type { Socket } from "node:net";
import { ExecaError, execa, type ResultPromise } from "execa";
import {
  HELPER_PROGRAMS,
  type HelperExit,
  type HelperReply,
  type HelperRequest,
  OUTPUT_CAP_BYTES,
} from "./spawn-helper-protocol.js";

const running = new Map<number, ResultPromise>();

function reply(message: HelperReply): void {
  if (process.connected) process.send?.(message);
}

/** Collect a stream's text up to the cap (its start: where btrfs-progs says what went wrong). */
function collect(stream: NodeJS.ReadableStream | null | undefined): () => string {
  const parts: Buffer[] = [];
  let bytes = 0;
  stream?.on("data", (chunk: Buffer) => {
    if (bytes >= OUTPUT_CAP_BYTES) return;
    const part = chunk.subarray(0, OUTPUT_CAP_BYTES - bytes);
    parts.push(part);
    bytes += part.length;
  });
  return () => Buffer.concat(parts).toString("utf8");
}

function run(request: Extract<HelperRequest, { type: "run" }>, socket: Socket | undefined): void {
  const exit = (fields: Omit<HelperExit, "type" | "id">) =>
    reply({ type: "exit", id: request.id, ...fields });
  if (!HELPER_PROGRAMS.has(request.file)) {
    socket?.destroy();
    exit({
      exitCode: null,
      signal: null,
      stdout: "",
      stderr: "",
      startError: { code: "ENOTALLOWED", message: `the spawn helper does not run ${request.file}` },
    });
    return;
  }
  const toStdout = request.socket === "stdout";
  const subprocess = execa(request.file, request.args, {
    stdin: (!toStdout && socket) || "ignore",
    stdout: (toStdout && socket) || "pipe",
    stderr: "pipe",
    buffer: false,
    reject: true,
  });
  // The program has its own copy of the socket now; this process reads and writes none of it.
  socket?.destroy();
  running.set(request.id, subprocess);
  const stdout = collect(subprocess.stdout);
  const stderr = collect(subprocess.stderr);
  subprocess.then(
    () => exit({ exitCode: 0, signal: null, stdout: stdout(), stderr: stderr() }),
    (err: unknown) => {
      const failed = err instanceof ExecaError ? err : undefined;
      const started = failed?.exitCode !== undefined || failed?.signal !== undefined;
      exit({
        exitCode: failed?.exitCode ?? null,
        signal: (failed?.signal as NodeJS.Signals | undefined) ?? null,
        stdout: stdout(),
        stderr: stderr(),
        ...(started
          ? {}
          : {
              startError: {
                code: (failed as { code?: string } | undefined)?.code ?? "ESPAWN",
                message: failed?.shortMessage ?? String(err),
              },
            }),
      });
    },
  );
  void subprocess.finally(() => running.delete(request.id)).catch(() => undefined);
}

process.on("message", (request: HelperRequest, handle: unknown) => {
  if (request.type === "run") run(request, handle as Socket | undefined);
  else if (request.type === "kill") running.get(request.id)?.kill(request.signal);
});

// Listening: from now on a socket sent with a run is handed on in the tick it arrives in (a message is
// emitted before any read of the socket could complete), never read here.
reply({ type: "ready" });

// The parent is gone: nothing it started may go on without it (a receive writing into a staging
// directory that the next agent sweeps).
process.on("disconnect", () => {
  for (const subprocess of running.values()) subprocess.kill("SIGKILL");
  process.exit(0);
});
