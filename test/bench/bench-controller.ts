import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ControllerClient } from "@gild/api-client";
import { controllerUnitEnvironment, freePort, registerCleanup, waitFor } from "@gild/testkit";

/** A `gild controller run` process of its own, so its RSS and CPU are measured apart from the load. */
export interface BenchController {
  pid: number;
  url: string;
  dataDir: string;
  caPem: string;
  adminToken: string;
  logFile: string;
  /** Wall clock (ms) when the process was spawned: maps CPU profile times to wall time. */
  spawnedAt: number;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
  /** SIGTERM and wait (SIGKILL after the timeout); a CPU profile is written on a clean exit. */
  stop(timeoutMs?: number): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/** Start the controller on 127.0.0.1 with its pool on `pool`; resolves once /healthz answers. */
export async function startBenchController(options: {
  cli: string;
  dataDir: string;
  pool: string;
  logFile: string;
  cpuProfileDir?: string;
  /** The controller's `--database` (default: SQLite in the data dir). */
  database?: string;
}): Promise<BenchController> {
  const port = await freePort("127.0.0.1");
  const url = `https://127.0.0.1:${port}`;
  const log = openSync(options.logFile, "a");
  const args = [
    // Node's own flags for the controller (--trace-gc, say), split at spaces.
    ...(process.env.BENCH_CONTROLLER_NODE_ARGS ?? "").split(" ").filter((a) => a !== ""),
    ...(options.cpuProfileDir ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir] : []),
    options.cli,
    "controller",
    "run",
    "--data-dir",
    options.dataDir,
    "--pool",
    options.pool,
    "--listen",
    `127.0.0.1:${port}`,
    "--log-level",
    "warn",
    ...(options.database ? ["--database", options.database] : []),
  ];
  const spawnedAt = Date.now();
  // The environment gild-controller.service gives it (its malloc settings): measured as it runs.
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", log, log],
    env: { ...process.env, ...controllerUnitEnvironment() },
  });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not start the controller");
  const unregister = registerCleanup(`controller pid ${pid}`, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const logTail = (lines = 30) => {
    try {
      return readFileSync(options.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  };
  const stop = async (timeoutMs = 30_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited(child);
      clearTimeout(timer);
    }
    unregister();
  };
  try {
    const caFile = join(options.dataDir, "tls", "ca.pem");
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`the controller exited early:\n${logTail()}`);
        if (!existsSync(caFile) || !existsSync(join(options.dataDir, "cli.json"))) return false;
        const probe = new ControllerClient({
          url,
          caPem: readFileSync(caFile, "utf8"),
          token: "",
        });
        return (await probe.raw("GET", "/healthz", undefined, { auth: false })).status === 200;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `${url}/healthz` },
    );
  } catch (err) {
    await stop(5_000);
    throw err;
  }
  return {
    pid,
    url,
    dataDir: options.dataDir,
    caPem: readFileSync(join(options.dataDir, "tls", "ca.pem"), "utf8"),
    adminToken: readFileSync(join(options.dataDir, "admin.token"), "utf8").trim(),
    logFile: options.logFile,
    spawnedAt,
    logTail,
    stop,
  };
}
