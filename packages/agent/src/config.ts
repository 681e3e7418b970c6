import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { GildError, parseDuration, parseSize } from "@gild/core";

/** The agent's configuration as an operator writes it (config file and flags), all optional. */
export interface RawAgentConfig {
  stateDir?: string;
  pool?: string;
  /** Container driver: auto (systemd when it is PID 1, else process), systemd or process. */
  runtime?: string;
  /** Download rate limit for image transfers (bytes/s or "50MiB"), 0 for none. */
  maxDownloadRate?: string | number;
  /** How long the control connection may be silent before the agent reconnects. */
  silenceTimeout?: string | number;
  /** Upper bound of the reconnect backoff. */
  reconnectMax?: string | number;
  /** How often the inventory is compared with the last one sent. */
  inventoryInterval?: string | number;
  logLevel?: string;
}

export interface AgentConfig {
  stateDir: string;
  pool: string;
  runtime: "auto" | "systemd" | "process";
  maxDownloadRate: number;
  silenceTimeoutMs: number;
  reconnectMaxMs: number;
  inventoryIntervalMs: number;
  logLevel: string;
}

export const DEFAULT_AGENT_STATE_DIR = "/var/lib/gild/agent";
export const DEFAULT_AGENT_POOL = "/var/lib/gild/pool";

const KNOWN = new Set([
  "stateDir",
  "pool",
  "runtime",
  "maxDownloadRate",
  "silenceTimeout",
  "reconnectMax",
  "inventoryInterval",
  "logLevel",
]);
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export function readAgentConfigFile(path: string): RawAgentConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new GildError("GILD_CONFIG_INVALID", `cannot read config file ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not an object");
    return parsed as RawAgentConfig;
  } catch (err) {
    throw new GildError(
      "GILD_CONFIG_INVALID",
      `config file ${path} is not a JSON object: ${(err as Error).message}`,
    );
  }
}

/** Validate every setting at once (all problems listed), apply defaults, freeze. */
export function resolveAgentConfig(raw: RawAgentConfig): AgentConfig {
  const problems: Array<{ path: string; message: string }> = [];
  for (const key of Object.keys(raw))
    if (!KNOWN.has(key)) problems.push({ path: key, message: "unknown setting" });
  const duration = (value: string | number | undefined, fallback: number, path: string): number => {
    if (value === undefined) return fallback;
    if (typeof value === "number") return value;
    try {
      return parseDuration(value, path);
    } catch (err) {
      problems.push({ path, message: (err as Error).message });
      return fallback;
    }
  };
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
  let maxDownloadRate = 0;
  if (raw.maxDownloadRate !== undefined) {
    try {
      maxDownloadRate =
        typeof raw.maxDownloadRate === "number"
          ? raw.maxDownloadRate
          : parseSize(raw.maxDownloadRate, "maxDownloadRate");
    } catch (err) {
      problems.push({ path: "maxDownloadRate", message: (err as Error).message });
    }
  }
  const logLevel = raw.logLevel ?? "info";
  if (!LOG_LEVELS.includes(logLevel))
    problems.push({ path: "logLevel", message: `one of ${LOG_LEVELS.join(", ")}` });
  const config: AgentConfig = {
    stateDir: resolve(raw.stateDir ?? DEFAULT_AGENT_STATE_DIR),
    pool: resolve(raw.pool ?? DEFAULT_AGENT_POOL),
    runtime: runtime as AgentConfig["runtime"],
    maxDownloadRate,
    silenceTimeoutMs: duration(raw.silenceTimeout, 60_000, "silenceTimeout"),
    reconnectMaxMs: duration(raw.reconnectMax, 60_000, "reconnectMax"),
    inventoryIntervalMs: duration(raw.inventoryInterval, 30_000, "inventoryInterval"),
    logLevel,
  };
  if (problems.length > 0) {
    throw new GildError("GILD_CONFIG_INVALID", `invalid agent configuration (${problems.length} problems)`, {
      details: { problems },
    });
  }
  return Object.freeze(config);
}
