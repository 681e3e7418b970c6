import { spawn } from "node:child_process";
import { run } from "../host-commands.js";
import { capture } from "./capture.js";
import { faketimeFiles } from "./faketime-files.js";
import { type FleetContext, recordFor, setRecord, stopRole, waitOnline } from "./fleet-context.js";
import type { HostRecord } from "./fleet-state.js";
import { enterNetns } from "./network.js";
import { isRunning, spawnDetached } from "./process-record.js";
import type { ExecOptions, FleetHost, ProgramResult, SpawnInNetnsOptions } from "./types.js";

const agentRole = (name: string): string => `agent:${name}`;

/**
 * Start `gild agent run` in the host's namespace, detached, unless it already runs; returns the time
 * it was started (for waiting on a fresh session), or undefined when it was already running.
 */
export function launchAgent(ctx: FleetContext, host: HostRecord): number | undefined {
  const current = recordFor(ctx, agentRole(host.name));
  if (current && isRunning(current)) return undefined;
  const since = Date.now();
  const [file, args] = enterNetns(ctx.state.enter, host.netns, [
    process.execPath,
    host.cli ?? ctx.cli,
    "agent",
    "run",
    "--state-dir",
    host.stateDir,
    "--pool",
    host.poolPath,
    ...ctx.state.agentArgs,
    ...(host.agentArgs ?? []),
  ]);
  const env = { ...ctx.baseEnv, ...host.agentEnv };
  const record = spawnDetached({
    role: agentRole(host.name),
    marker: host.stateDir,
    file,
    args,
    env,
    logFile: host.logFile,
  });
  const leaves = faketimeFiles(env, record.pid);
  if (leaves.length > 0) ctx.state.sharedMemory = [...(ctx.state.sharedMemory ?? []), ...leaves];
  setRecord(ctx, record);
  ctx.log(`${host.name}: agent started (pid ${record.pid})`);
  return since;
}

/** Run a program in the host's namespace and wait for it. */
export function execInHost(
  ctx: FleetContext,
  host: HostRecord,
  argv: readonly string[],
  opts: ExecOptions = {},
): Promise<ProgramResult> {
  const [file, args] = enterNetns(ctx.state.enter, host.netns, argv);
  return capture(file, args, {
    env: { ...ctx.baseEnv, ...opts.env },
    input: opts.input,
    cwd: opts.cwd,
    timeoutMs: opts.timeoutMs,
  });
}

/** The FleetHost face of one recorded host. */
export function makeFleetHost(ctx: FleetContext, host: HostRecord): FleetHost {
  const role = agentRole(host.name);
  return {
    index: host.index,
    name: host.name,
    netns: host.netns,
    address: host.address,
    poolPath: host.poolPath,
    stateDir: host.stateDir,
    logFile: host.logFile,
    labels: host.labels,
    pid() {
      const record = recordFor(ctx, role);
      return record && isRunning(record) ? record.pid : undefined;
    },
    async startAgent() {
      const since = launchAgent(ctx, host);
      await waitOnline(ctx, [host.name], { timeoutMs: ctx.startTimeoutMs, since });
      ctx.log(`${host.name}: online`);
    },
    stopAgent(signal: NodeJS.Signals = "SIGTERM") {
      return stopRole(ctx, role, signal);
    },
    killAgent() {
      return stopRole(ctx, role, "SIGKILL");
    },
    async setLink(up: boolean) {
      await run("ip", ["-n", host.netns, "link", "set", "eth0", up ? "up" : "down"]);
      ctx.log(`${host.name}: link ${up ? "up" : "down"}`);
    },
    exec(argv, opts) {
      return execInHost(ctx, host, argv, opts);
    },
    spawn(argv: string[], opts: SpawnInNetnsOptions = {}) {
      const [file, args] = enterNetns(ctx.state.enter, host.netns, argv);
      return spawn(file, args, {
        env: { ...ctx.baseEnv, ...opts.env },
        cwd: opts.cwd,
        stdio: opts.stdio ?? ["ignore", "pipe", "pipe"],
      });
    },
    url(port: number, path = "") {
      return `http://${host.address}:${port}${path === "" || path.startsWith("/") ? path : `/${path}`}`;
    },
  };
}
