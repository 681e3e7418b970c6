import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Logger } from "@gild/core";
import type { LaunchedTool, LaunchOptions, ToolExit, ToolLauncher } from "./launcher.js";
import type { HelperReply, HelperRequest } from "./spawn-helper-protocol.js";

/** Longest unix socket path the kernel takes is 108 bytes with its NUL; leave room. */
const MAX_SOCKET_PATH_BYTES = 100;

interface Run {
  id: number;
  resolve: (exit: ToolExit) => void;
  /** A signal asked for before the program was started: it is then not started at all. */
  killedBefore?: NodeJS.Signals;
  /** The run request went to the helper. */
  sent: boolean;
}

const failed = (code: string, message: string): ToolExit => ({
  exitCode: null,
  signal: null,
  stdout: "",
  stderr: "",
  startError: { code, message },
});

/**
 * A launcher (launcher.ts) for a daemon with a large heap (the agent, the controller): a small helper
 * process, forked once while the daemon is still small, starts this package's programs (btrfs,
 * setpriv: nothing else), so the daemon's own pages are never write-protected by a fork (each fork of
 * a large process costs it a fault on every page it writes afterwards: for a 4 MiB chunk buffer, 15 ms
 * on a 2-core VM). A program's stdin that the daemon writes (a receive), or its stdout that the daemon
 * reads (a send), is a unix socket: a connection to a socket file in `socketDir`, accepted and handed
 * to the helper over IPC. The helper kills what it started and exits when the daemon is gone. A
 * helper that died is forked again for the next program.
 */
export class SpawnHelper implements ToolLauncher {
  private child: ChildProcess | undefined;
  /** Sends waiting for the helper to say it listens (HelperReply `ready`). */
  private waiting: Array<(child: ChildProcess) => void> | undefined;
  private nextId = 1;
  private readonly runs = new Map<number, Run>();
  private readonly socketDir: string;
  /** A directory this helper made for its sockets (the configured one's path was too long). */
  private readonly ownDir: string | undefined;
  private readonly prefix = randomBytes(4).toString("hex");
  private closed = false;

  constructor(private readonly deps: { socketDir: string; log: Logger }) {
    const longest = join(deps.socketDir, `${this.prefix}-${Number.MAX_SAFE_INTEGER}.sock`);
    if (Buffer.byteLength(longest) <= MAX_SOCKET_PATH_BYTES) {
      mkdirSync(deps.socketDir, { recursive: true, mode: 0o700 });
      this.socketDir = deps.socketDir;
    } else {
      this.ownDir = mkdtempSync(join(tmpdir(), "gild-spawn-"));
      this.socketDir = this.ownDir;
    }
  }

  /** Fork the helper now, while this process is small (the one fork of it that copies its pages). */
  warm(): void {
    this.helper();
  }

  /** The helper's pid while one runs (tests). */
  get helperPid(): number | undefined {
    return this.child?.pid;
  }

  /** Stop the helper (it kills what still runs); later starts fail. */
  close(): void {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    if (child?.connected) child.disconnect();
    for (const id of [...this.runs.keys()]) this.finish(id, failed("ECLOSED", "the daemon is stopping"));
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }

  start(file: string, args: readonly string[], options: LaunchOptions): LaunchedTool {
    if (options.stdin && options.stdout)
      throw new Error("a launched program gives its caller stdin or stdout, not both");
    const id = this.nextId++;
    let resolve: (exit: ToolExit) => void = () => undefined;
    const exited = new Promise<ToolExit>((r) => (resolve = r));
    if (this.closed) {
      resolve(failed("ECLOSED", "the daemon is stopping"));
      // A stdin asked for is one that takes nothing: its writer sees it closed, as a program's that
      // ended; a stdout asked for gives nothing.
      const stdin = options.stdin ? new PassThrough().destroy() : null;
      const stdout = options.stdout ? new PassThrough().end() : null;
      return { stdin, stdout, exited, kill: () => undefined };
    }
    const run: Run = { id, resolve, sent: false };
    this.runs.set(id, run);
    const side = options.stdin ? "stdin" : options.stdout ? "stdout" : undefined;
    const request: HelperRequest = {
      type: "run",
      id,
      file,
      args: [...args],
      ...(side ? { socket: side } : {}),
    };
    const socket = side ? this.connectSocket(id, run, request) : null;
    if (!socket) this.send(run, request);
    return {
      stdin: side === "stdin" ? socket : null,
      stdout: side === "stdout" ? socket : null,
      exited,
      kill: (signal) => {
        if (!this.runs.has(id)) return;
        if (!run.sent) run.killedBefore ??= signal;
        else if (this.child) this.post({ type: "kill", id, signal });
      },
    };
  }

  /** The helper, forked when there is none (at the first start, or after one died). */
  private helper(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(fileURLToPath(new URL("./spawn-helper-main.js", import.meta.url)), [], {
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      execArgv: [],
    });
    this.child = child;
    const waiting: Array<(child: ChildProcess) => void> = [];
    this.waiting = waiting;
    // The helper keeps this process running only while a program runs (refs): a daemon that is done
    // exits, and the helper follows it (disconnect).
    child.unref();
    this.refs();
    child.on("message", (reply: HelperReply) => {
      if (reply.type === "ready") {
        if (this.waiting === waiting) this.waiting = undefined;
        for (const send of waiting.splice(0)) send(child);
        return;
      }
      const { type: _type, id, ...exit } = reply;
      this.finish(id, exit);
    });
    child.once("exit", (code, signal) => {
      if (this.child === child) {
        this.child = undefined;
        this.waiting = undefined;
      }
      if (this.closed) return;
      this.deps.log.warn({ code, signal }, "the spawn helper exited; the next program starts a new one");
      // What it had started died with it (it kills them) or runs on unobserved: either way, failed.
      for (const run of [...this.runs.values()])
        if (run.sent)
          this.finish(
            run.id,
            failed("EHELPER", `the spawn helper exited (${signal ?? code}) while this ran`),
          );
    });
    child.on("error", (err) => this.deps.log.warn({ err: err.message }, "spawn helper channel error"));
    return child;
  }

  /** The run is over: answer it once. */
  private finish(id: number, exit: ToolExit): void {
    const run = this.runs.get(id);
    if (!run) return;
    this.runs.delete(id);
    this.refs();
    run.resolve(exit);
  }

  /** Hold this process open while a program runs, not otherwise. */
  private refs(): void {
    const channel = this.child?.channel;
    if (this.runs.size > 0) channel?.ref();
    else channel?.unref();
  }

  private send(run: Run, request: Extract<HelperRequest, { type: "run" }>, socket?: net.Socket): void {
    if (run.killedBefore) {
      socket?.destroy();
      this.finish(run.id, { exitCode: null, signal: run.killedBefore, stdout: "", stderr: "" });
      return;
    }
    run.sent = true;
    // The socket goes to the helper, and is closed here once sent.
    this.post(request, socket, (err) =>
      this.finish(run.id, failed("EHELPER", `could not reach the spawn helper: ${err.message}`)),
    );
    this.refs();
  }

  /** Send the helper a request, in order, once it listens (forking one if there is none). */
  private post(request: HelperRequest, socket?: net.Socket, onError?: (err: Error) => void): void {
    const child = this.helper();
    const sendTo = (to: ChildProcess) =>
      to.send(request, socket, (err) => {
        if (err) onError?.(err);
      });
    if (this.waiting) this.waiting.push(sendTo);
    else sendTo(child);
  }

  /**
   * The program's stdin or stdout (request.socket): a connection to a socket file that only this
   * process listens on (the directory is root's), accepted paused (nothing is read from it here) and
   * handed to the helper; this process keeps the other end.
   */
  private connectSocket(id: number, run: Run, request: Extract<HelperRequest, { type: "run" }>): net.Socket {
    const path = join(this.socketDir, `${this.prefix}-${id}.sock`);
    const server = net.createServer({ pauseOnConnect: true });
    const fail = (err: Error) => {
      server.close();
      rmSync(path, { force: true });
      this.finish(
        id,
        failed(
          (err as NodeJS.ErrnoException).code ?? "ESOCKET",
          `${request.socket ?? "stdin"} socket: ${err.message}`,
        ),
      );
    };
    server.once("error", fail);
    server.once("connection", (accepted) => {
      server.close();
      rmSync(path, { force: true });
      this.send(run, request, accepted);
    });
    server.listen(path);
    // Bound and listening already (a unix socket's listen is synchronous): the connect finds it.
    const client = net.connect(path);
    client.once("error", (err) => {
      if (!run.sent) fail(err);
    });
    return client;
  }
}
