import { closeSync, openSync, readSync, statSync } from "node:fs";
import { waitFor } from "../wait.js";
import { capture } from "./capture.js";
import { apiHosts } from "./controller-http.js";
import { type FleetState, writeFleetState } from "./fleet-state.js";
import { isRunning, type ProcessRecord, signalRecorded, waitGone } from "./process-record.js";
import type { FleetHostStatus, GildOptions, ProgramResult } from "./types.js";

/** What the fleet's parts share: its state, how to run the CLI, how to log. */
export interface FleetContext {
  state: FleetState;
  cli: string;
  /** This process's environment without GILD_* (a developer's GILD_CONTROLLER must not leak in). */
  baseEnv: NodeJS.ProcessEnv;
  /** GILD_CONTROLLER_DIR for the CLI. */
  cliEnv: Record<string, string>;
  log: (line: string) => void;
  startTimeoutMs: number;
}

export function save(ctx: FleetContext): void {
  writeFleetState(ctx.state);
}

export function environmentWithoutGild(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("GILD_")));
}

/** The last bytes of a log file, for error messages. */
export function logTail(file: string, bytes = 3_000): string {
  try {
    const size = statSync(file).size;
    const fd = openSync(file, "r");
    try {
      const buffer = Buffer.alloc(Math.min(bytes, size));
      readSync(fd, buffer, 0, buffer.length, size - buffer.length);
      return buffer.toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    return `(cannot read ${file}: ${(err as Error).message})`;
  }
}

export function runGild(
  ctx: FleetContext,
  args: readonly string[],
  opts: GildOptions = {},
): Promise<ProgramResult> {
  return capture(process.execPath, [ctx.cli, ...args], {
    env: { ...ctx.baseEnv, ...ctx.cliEnv, ...opts.env },
    input: opts.input,
    timeoutMs: opts.timeoutMs,
  });
}

export async function runGildJson<T>(ctx: FleetContext, args: readonly string[]): Promise<T> {
  // --json belongs to gild, not to a command after "--" (gild image update php -- apt-get ...).
  const dashdash = args.indexOf("--");
  const withJson =
    dashdash < 0 ? [...args, "--json"] : [...args.slice(0, dashdash), "--json", ...args.slice(dashdash)];
  const result = await runGild(ctx, withJson);
  if (result.code !== 0) {
    throw new Error(`gild ${args.join(" ")} --json exited with ${result.code}: ${result.stderr.trim()}`);
  }
  try {
    return JSON.parse(result.stdout) as T;
  } catch (err) {
    throw new Error(`gild ${args.join(" ")} --json printed no JSON: ${result.stdout.slice(0, 500)}`, {
      cause: err,
    });
  }
}

export function hostStatuses(ctx: FleetContext): Promise<FleetHostStatus[]> {
  return runGildJson<FleetHostStatus[]>(ctx, ["hosts"]);
}

export function recordFor(ctx: FleetContext, role: string): ProcessRecord | undefined {
  return ctx.state.processes.find((p) => p.role === role);
}

export function setRecord(ctx: FleetContext, record: ProcessRecord): void {
  ctx.state.processes = [...ctx.state.processes.filter((p) => p.role !== record.role), record];
  save(ctx);
}

/** Signal the process recorded for a role and wait until it is gone, then forget it. */
export async function stopRole(ctx: FleetContext, role: string, signal: NodeJS.Signals): Promise<void> {
  const record = recordFor(ctx, role);
  if (!record) return;
  if (signalRecorded(record, signal)) {
    try {
      await waitGone([record], 30_000);
    } catch (err) {
      throw new Error(`${role} (pid ${record.pid}) did not exit within 30 s of ${signal}`, { cause: err });
    }
  }
  ctx.state.processes = ctx.state.processes.filter((p) => p !== record);
  save(ctx);
}

/**
 * Wait until every named host shows online in `gild hosts --json` (and, for those given a `since`,
 * was seen at or after it: a fresh session, not one the controller has not yet noticed is dead).
 * Fails at once when the agent of a host it waits for exits.
 */
export async function waitOnline(
  ctx: FleetContext,
  names: readonly string[],
  options: { timeoutMs: number; since?: number },
): Promise<FleetHostStatus[]> {
  let missing: string[] = [...names];
  type Outcome = { kind: "dead"; dead: string[] } | { kind: "online"; statuses: FleetHostStatus[] };
  const outcome = await waitFor<Outcome>(
    async () => {
      const dead = names.filter((name) => {
        const record = recordFor(ctx, `agent:${name}`);
        return record !== undefined && !isRunning(record);
      });
      if (dead.length > 0) return { kind: "dead", dead };
      const notOnline = (statuses: ReadonlyArray<Pick<FleetHostStatus, "name" | "state" | "lastSeen">>) =>
        names.filter((name) => {
          const s = statuses.find((h) => h.name === name);
          if (s?.state !== "online") return true;
          return options.since !== undefined && (s.lastSeen ?? 0) < options.since;
        });
      // Poll the API (cheap), then confirm with the CLI, which is what tests and operators look at.
      missing = notOnline(await apiHosts(ctx.state.controllerDataDir));
      if (missing.length > 0) return false;
      const statuses = await hostStatuses(ctx);
      missing = notOnline(statuses);
      return missing.length === 0 ? { kind: "online", statuses } : false;
    },
    { timeoutMs: options.timeoutMs, intervalMs: 100, what: `hosts online: ${names.join(", ")}` },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; not online: ${missing.join(", ")}`, { cause: err });
  });
  if (outcome.kind === "dead") {
    const name = outcome.dead[0] ?? "";
    const host = ctx.state.hosts.find((h) => h.name === name);
    throw new Error(
      `the agent of ${outcome.dead.join(", ")} exited before it came online; ${host?.logFile ?? "its log"} ends with:\n${host ? logTail(host.logFile) : ""}`,
    );
  }
  return outcome.statuses;
}
