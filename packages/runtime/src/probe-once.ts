import http from "node:http";
import https from "node:https";
import net from "node:net";
import { parseTcpTarget } from "@gild/core";
import type { ProbeSpec } from "./probe-spec.js";
import type { ExecResult } from "./types.js";

/** The outcome of one probe. */
export interface ProbeResult {
  ok: boolean;
  /** What was seen, for operators: "HTTP 200 from GET ...", "connection refused ...", "exit code 1: ...". */
  detail: string;
  /** Epoch ms when the probe started. */
  at: number;
  durationMs: number;
}

/** Runs a command inside the app's container (RuntimeDriver.exec bound to one container). */
export type ContainerExec = (argv: string[], opts: { timeoutMs: number }) => Promise<ExecResult>;

export interface ProbeContext {
  /** Needed by exec probes. */
  exec?: ContainerExec;
  /** Overrides the probe's own timeout (waitHealthy shortens it to the time left before its deadline). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

type Outcome = { ok: boolean; detail: string };

function describeNetError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused (ECONNREFUSED): nothing listens there";
    case "ECONNRESET":
      return "connection reset by the peer (ECONNRESET)";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `host unreachable (${code})`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot resolve the host (${code})`;
    default:
      return code ? `${message} (${code})` : message;
  }
}

/**
 * One settle-once outcome with a timeout and an abort, and a cleanup that always runs: the building
 * block of the network probes, so no socket or timer outlives a probe.
 */
function withDeadline(
  timeoutMs: number,
  timeoutDetail: string,
  signal: AbortSignal | undefined,
  body: (finish: (outcome: Outcome) => void) => () => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    let cleanup: () => void = () => undefined;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      cleanup();
      resolve(outcome);
    };
    const onAbort = () => finish({ ok: false, detail: "cancelled" });
    const timer = setTimeout(() => finish({ ok: false, detail: timeoutDetail }), timeoutMs);
    if (signal?.aborted) {
      finish({ ok: false, detail: "cancelled" });
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    cleanup = body(finish);
    if (settled) cleanup();
  });
}

function httpProbe(target: string, timeoutMs: number, signal?: AbortSignal): Promise<Outcome> {
  const url = new URL(target);
  return withDeadline(timeoutMs, `GET ${target}: no answer within ${timeoutMs} ms`, signal, (finish) => {
    const options: https.RequestOptions = {
      method: "GET",
      // A fresh connection per probe: a pooled one could hide that the app stopped accepting.
      agent: false,
      headers: { "user-agent": "gild-health-probe", connection: "close" },
    };
    // Health, not trust: like Kubernetes, an https probe does not verify the app's certificate.
    if (url.protocol === "https:") options.rejectUnauthorized = false;
    const request = (url.protocol === "https:" ? https : http).request(url, options, (response) => {
      const status = response.statusCode ?? 0;
      // Errors after the verdict (the socket is destroyed below) are expected.
      response.on("error", () => undefined);
      response.resume();
      // Redirects are not followed: a 3xx is an answer from the app, so it counts as healthy.
      finish({ ok: status >= 200 && status < 400, detail: `HTTP ${status} from GET ${target}` });
    });
    request.on("error", (err) => finish({ ok: false, detail: `GET ${target}: ${describeNetError(err)}` }));
    request.end();
    return () => request.destroy();
  });
}

function tcpProbe(target: string, timeoutMs: number, signal?: AbortSignal): Promise<Outcome> {
  const parsed = parseTcpTarget(target);
  if (!parsed) return Promise.resolve({ ok: false, detail: `"${target}" is not host:port` });
  return withDeadline(timeoutMs, `connect ${target}: no answer within ${timeoutMs} ms`, signal, (finish) => {
    const socket = net.connect({ host: parsed.host, port: parsed.port });
    socket.on("connect", () => finish({ ok: true, detail: `connected to ${target}` }));
    socket.on("error", (err) => finish({ ok: false, detail: `connect ${target}: ${describeNetError(err)}` }));
    return () => socket.destroy();
  });
}

async function execProbe(
  command: readonly string[],
  timeoutMs: number,
  exec: ContainerExec,
): Promise<Outcome> {
  const shown = command.join(" ");
  try {
    const result = await exec([...command], { timeoutMs });
    const lastLine = result.output.trim().split("\n").at(-1) ?? "";
    if (result.exitCode === 0) return { ok: true, detail: `${shown}: exit code 0` };
    const what =
      result.exitCode === null ? `timed out after ${timeoutMs} ms` : `exit code ${result.exitCode}`;
    return { ok: false, detail: `${shown}: ${what}${lastLine ? `: ${lastLine}` : ""}` };
  } catch (err) {
    return { ok: false, detail: `${shown}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Probe once: http (2xx/3xx in time), tcp (connects in time), or exec (exit 0 in time, in the container). */
export async function probeOnce(probe: ProbeSpec, ctx: ProbeContext = {}): Promise<ProbeResult> {
  const at = Date.now();
  const timeoutMs = Math.max(1, ctx.timeoutMs ?? probe.timeoutMs);
  let outcome: Outcome;
  switch (probe.kind) {
    case "http":
      outcome = await httpProbe(probe.target as string, timeoutMs, ctx.signal);
      break;
    case "tcp":
      outcome = await tcpProbe(probe.target as string, timeoutMs, ctx.signal);
      break;
    case "exec":
      if (!ctx.exec) throw new Error("an exec probe needs ctx.exec (the container to run it in)");
      outcome = await execProbe(probe.command as readonly string[], timeoutMs, ctx.exec);
      break;
    default: {
      const never: never = probe.kind;
      throw new Error(`unknown probe kind ${String(never)}`);
    }
  }
  return { ...outcome, at, durationMs: Date.now() - at };
}
