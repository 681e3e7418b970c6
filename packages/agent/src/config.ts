import { isAbsolute, resolve } from "node:path";
import {
  assertNoConfigProblems,
  DURATION_LIMITS,
  durationField,
  type FieldProblem,
  logLevelField,
  sizeField,
  unknownFields,
} from "@gild/core";

import { type MetricsListen, parseMetricsListen } from "./metrics-listen.js";

/** The agent's configuration as an operator writes it (config file and flags), all optional. */
export interface RawAgentConfig {
  stateDir?: string;
  pool?: string;
  /** Container driver: auto (systemd when it is PID 1, else process), systemd or process. */
  runtime?: string;
  /** Download rate limit for image transfers (bytes/s or "50MiB"), 0 for none. */
  maxDownloadRate?: string | number;
  /** Serve verified chunks to other hosts on this "address:port" (the address they reach it at). */
  peerListen?: string;
  /** Upload rate limit of the peer server, all uploads together (bytes/s or "50MiB"), 0 for none. */
  peerUploadRate?: string | number;
  /** How long the control connection may be silent before the agent reconnects. */
  silenceTimeout?: string | number;
  /** Upper bound of the reconnect backoff. */
  reconnectMax?: string | number;
  /** How often the inventory is compared with the last one sent. */
  inventoryInterval?: string | number;
  logLevel?: string;
  /** Serve Prometheus metrics on `port` (127.0.0.1) or `host:port`; off when absent or empty. */
  metricsListen?: string;
}

export interface AgentConfig {
  stateDir: string;
  pool: string;
  runtime: "auto" | "systemd" | "process";
  maxDownloadRate: number;
  /** null: no peer server (the default). */
  peerListen: { host: string; port: number } | null;
  peerUploadRate: number;
  silenceTimeoutMs: number;
  reconnectMaxMs: number;
  inventoryIntervalMs: number;
  logLevel: string;
  /** Where GET /metrics is served, or null for nowhere. */
  metricsListen: MetricsListen | null;
}

export const DEFAULT_AGENT_STATE_DIR = "/var/lib/gild/agent";
export const DEFAULT_AGENT_POOL = "/var/lib/gild/pool";

const KNOWN_SETTINGS = [
  "stateDir",
  "pool",
  "runtime",
  "maxDownloadRate",
  "peerListen",
  "peerUploadRate",
  "silenceTimeout",
  "reconnectMax",
  "inventoryInterval",
  "logLevel",
  "metricsListen",
] as const satisfies ReadonlyArray<keyof RawAgentConfig>;

/**
 * "address:port" of the peer server. The address must be one other hosts reach this one at (it is what
 * the controller gives them): a wildcard (0.0.0.0, ::) names no host, so it is refused.
 */
function peerListenField(value: unknown, problems: FieldProblem[]): AgentConfig["peerListen"] {
  // Absent or "" (as in the example config): off.
  if (value === undefined || value === "") return null;
  const m =
    typeof value === "string" ? /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value) : null;
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !(port >= 1 && port <= 65535)) {
    problems.push({
      path: "peerListen",
      message: 'must be "address:port" (e.g. 10.0.0.5:7744, [fd00::5]:7744)',
    });
    return null;
  }
  if (host === "0.0.0.0" || host === "::") {
    problems.push({
      path: "peerListen",
      message:
        "must be an address other hosts reach this one at, not a wildcard: the controller gives it to them",
    });
    return null;
  }
  return { host, port };
}

/** Validate every setting at once (all problems listed), apply defaults, freeze. */
export function resolveAgentConfig(raw: RawAgentConfig): AgentConfig {
  const problems: FieldProblem[] = [];
  unknownFields(raw, KNOWN_SETTINGS, problems);
  for (const [key, value] of [
    ["stateDir", raw.stateDir],
    ["pool", raw.pool],
  ] as const) {
    if (value !== undefined && !isAbsolute(value))
      problems.push({ path: key, message: "must be an absolute path" });
  }
  const runtime = raw.runtime ?? "auto";
  if (runtime !== "auto" && runtime !== "systemd" && runtime !== "process") {
    problems.push({ path: "runtime", message: "one of auto, systemd, process" });
  }
  const maxDownloadRate = sizeField(raw.maxDownloadRate, 0, "maxDownloadRate", problems);
  const peerUploadRate = sizeField(raw.peerUploadRate, 0, "peerUploadRate", problems);
  const peerListen = peerListenField(raw.peerListen, problems);
  const logLevel = logLevelField(raw.logLevel, problems);
  let metricsListen: MetricsListen | null = null;
  if (raw.metricsListen !== undefined && raw.metricsListen !== "") {
    metricsListen =
      typeof raw.metricsListen === "string" ? (parseMetricsListen(raw.metricsListen) ?? null) : null;
    if (!metricsListen)
      problems.push({ path: "metricsListen", message: "a port, or host:port (IPv6 in brackets)" });
  }
  const config: AgentConfig = {
    stateDir: resolve(raw.stateDir ?? DEFAULT_AGENT_STATE_DIR),
    pool: resolve(raw.pool ?? DEFAULT_AGENT_POOL),
    runtime: runtime as AgentConfig["runtime"],
    maxDownloadRate,
    peerListen,
    peerUploadRate,
    silenceTimeoutMs: durationField(
      raw.silenceTimeout,
      60_000,
      "silenceTimeout",
      problems,
      DURATION_LIMITS.agentTimer,
    ),
    reconnectMaxMs: durationField(
      raw.reconnectMax,
      60_000,
      "reconnectMax",
      problems,
      DURATION_LIMITS.agentTimer,
    ),
    inventoryIntervalMs: durationField(
      raw.inventoryInterval,
      30_000,
      "inventoryInterval",
      problems,
      DURATION_LIMITS.agentTimer,
    ),
    logLevel,
    metricsListen,
  };
  assertNoConfigProblems("agent", problems);
  return Object.freeze(config);
}
