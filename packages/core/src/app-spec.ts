import { createHash } from "node:crypto";
import { DURATION_LIMITS, durationField, type FieldProblem } from "./config-fields.js";
import { GildError } from "./errors.js";
import { isValidLine } from "./image.js";

/** How an app's health is judged. */
export interface HealthSpec {
  kind: "http" | "tcp" | "exec";
  /** http: the URL; tcp: host:port; exec: empty. */
  target: string;
  /** exec: argv run inside the container. */
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  initialDelayMs: number;
  /** Healthy only after probes held good this long without a break. */
  minHealthyMs: number;
}

/** An app as the controller stores it, validated and with every default applied. */
export interface AppSpec {
  name: string;
  /** Image line the app runs on. */
  image: string;
  /** Code line whose version is mounted read-only at codeMount; null for an app without one. */
  code: string | null;
  /** Where the code version appears inside the container (with code only), e.g. /srv/app/code. */
  codeMount: string | null;
  /** Host names or label selectors (role=web) the app runs on. */
  hosts: string[];
  /** argv of the container's PID 1 (it must handle SIGTERM). */
  command: string[];
  env: Record<string, string>;
  /** Where data/<app> is mounted in the container; null for no data mount. */
  data: string | null;
  /** The port the app serves (informational, shown in listings and URLs). */
  port: number | null;
  health: HealthSpec | null;
  stopTimeoutMs: number;
  /** For a manual deploy: how long a new generation gets to turn healthy before the local rollback. */
  healthyDeadlineMs: number;
}

/** host and port of a tcp probe target ("[::1]:80" for IPv6), or undefined when it is not "host:port". */
export function parseTcpTarget(target: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(target);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port };
}

export const APP_DEFAULTS = Object.freeze({
  codeMount: "/srv/code",
  stopTimeoutMs: 10_000,
  healthyDeadlineMs: 120_000,
  health: Object.freeze({ intervalMs: 1_000, timeoutMs: 1_000, initialDelayMs: 0, minHealthyMs: 3_000 }),
});

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KNOWN_KEYS = [
  "name",
  "image",
  "code",
  "codeMount",
  "hosts",
  "command",
  "cmd",
  "env",
  "data",
  "port",
  "health",
  "stopTimeout",
  "healthyDeadline",
];
const HEALTH_KEYS = ["http", "tcp", "exec", "interval", "timeout", "initialDelay", "minHealthy"];

/** `http://...`, `tcp://host:port` or `exec:command` as a health spec, for the --health flag. */
export function healthShorthand(text: string): Record<string, string> {
  if (/^https?:\/\//.test(text)) return { http: text };
  if (text.startsWith("tcp://")) return { tcp: text.slice("tcp://".length) };
  if (text.startsWith("exec:")) return { exec: text.slice("exec:".length) };
  throw new GildError(
    "GILD_INVALID_SPEC",
    `--health "${text}" is not http://..., tcp://host:port or exec:command`,
  );
}

function parseHealth(raw: unknown, problems: FieldProblem[]): HealthSpec | null {
  if (raw === undefined || raw === null) return null;
  let spec = raw;
  if (typeof raw === "string") {
    try {
      spec = healthShorthand(raw);
    } catch (err) {
      problems.push({ path: "health", message: (err as Error).message });
      return null;
    }
  }
  if (typeof spec !== "object" || Array.isArray(spec)) {
    problems.push({ path: "health", message: "must be an object with one of http, tcp, exec" });
    return null;
  }
  const h = spec as Record<string, unknown>;
  for (const key of Object.keys(h))
    if (!HEALTH_KEYS.includes(key)) problems.push({ path: `health.${key}`, message: "unknown field" });
  const kinds = (["http", "tcp", "exec"] as const).filter((k) => h[k] !== undefined);
  if (kinds.length !== 1) {
    problems.push({ path: "health", message: "needs exactly one of http, tcp, exec" });
    return null;
  }
  const kind = kinds[0] as HealthSpec["kind"];
  let target = "";
  let command: string[] = [];
  const value = h[kind];
  if (kind === "http") {
    if (typeof value !== "string" || !/^https?:\/\/[^/\s]+/.test(value))
      problems.push({ path: "health.http", message: "must be an http(s) URL" });
    else target = value;
  } else if (kind === "tcp") {
    if (typeof value !== "string" || !parseTcpTarget(value))
      problems.push({ path: "health.tcp", message: 'must be host:port ("[::1]:port" for IPv6)' });
    else target = value;
  } else if (typeof value === "string" && value.trim().length > 0) command = ["/bin/sh", "-c", value];
  else if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string"))
    command = value as string[];
  else problems.push({ path: "health.exec", message: "must be a command string or a non-empty list" });
  const d = APP_DEFAULTS.health;
  const out: HealthSpec = {
    kind,
    target,
    command,
    intervalMs: durationField(h.interval, d.intervalMs, "health.interval", problems, DURATION_LIMITS.probe),
    timeoutMs: durationField(h.timeout, d.timeoutMs, "health.timeout", problems, DURATION_LIMITS.probe),
    initialDelayMs: durationField(
      h.initialDelay,
      d.initialDelayMs,
      "health.initialDelay",
      problems,
      DURATION_LIMITS.probe,
    ),
    minHealthyMs: durationField(
      h.minHealthy,
      d.minHealthyMs,
      "health.minHealthy",
      problems,
      DURATION_LIMITS.minHealthy,
    ),
  };
  if (out.intervalMs < 10) problems.push({ path: "health.interval", message: "at least 10ms" });
  if (out.timeoutMs < 10) problems.push({ path: "health.timeout", message: "at least 10ms" });
  return out;
}

/**
 * Validate an app definition (from flags, or a YAML/JSON app file) as a whole: every problem is
 * reported at once with its path, in one GILD_INVALID_SPEC. Returns the spec with defaults applied.
 */
export function parseAppSpec(raw: unknown): AppSpec {
  const problems: FieldProblem[] = [];
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new GildError("GILD_INVALID_SPEC", "an app spec must be an object", {
      details: { problems: [{ path: "", message: "not an object" }] },
    });
  }
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r))
    if (!KNOWN_KEYS.includes(key)) problems.push({ path: key, message: "unknown field" });
  const name = typeof r.name === "string" ? r.name : "";
  if (!isValidLine(name))
    problems.push({ path: "name", message: "lowercase letters, digits and '-', starting with a letter" });
  const image = typeof r.image === "string" ? r.image : "";
  if (!isValidLine(image)) problems.push({ path: "image", message: "an image line name, e.g. php" });
  let hosts: string[] = [];
  if (typeof r.hosts === "string")
    hosts = r.hosts
      .split(",")
      .map((h) => h.trim())
      .filter(Boolean);
  else if (Array.isArray(r.hosts) && r.hosts.every((h) => typeof h === "string"))
    hosts = (r.hosts as string[]).map((h) => h.trim()).filter(Boolean);
  else problems.push({ path: "hosts", message: "a list of host names or label selectors (role=web)" });
  if (hosts.length === 0 && !problems.some((p) => p.path === "hosts"))
    problems.push({ path: "hosts", message: "at least one host or label selector" });
  let command: string[] = [];
  if (r.command !== undefined && r.cmd !== undefined)
    problems.push({ path: "cmd", message: "give command or cmd, not both" });
  if (Array.isArray(r.command) && r.command.length > 0 && r.command.every((c) => typeof c === "string"))
    command = r.command as string[];
  else if (typeof r.cmd === "string" && r.cmd.trim().length > 0) command = ["/bin/sh", "-c", r.cmd];
  else if (typeof r.command === "string" && r.command.trim().length > 0)
    command = ["/bin/sh", "-c", r.command];
  else
    problems.push({
      path: "command",
      message: "the container's command: a list (argv) or a shell string (cmd)",
    });
  const env: Record<string, string> = {};
  if (r.env !== undefined) {
    if (typeof r.env !== "object" || r.env === null || Array.isArray(r.env))
      problems.push({ path: "env", message: "a map of NAME: value" });
    else {
      for (const [key, value] of Object.entries(r.env as Record<string, unknown>)) {
        if (!ENV_KEY.test(key)) problems.push({ path: `env.${key}`, message: "not a valid variable name" });
        else if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
          problems.push({ path: `env.${key}`, message: "must be a string" });
        } else env[key] = String(value);
      }
    }
  }
  const data = containerPath(r.data, "data", "/srv/app", problems);
  let code: string | null = null;
  if (r.code !== undefined && r.code !== null) {
    if (typeof r.code !== "string" || !isValidLine(r.code))
      problems.push({ path: "code", message: "a code line name, e.g. blog" });
    else if (r.code === image) problems.push({ path: "code", message: "must not be the image line" });
    else code = r.code;
  }
  let codeMount: string | null = null;
  if (r.codeMount !== undefined && r.codeMount !== null && r.code === undefined)
    problems.push({ path: "codeMount", message: "only with code" });
  else if (code !== null)
    codeMount =
      containerPath(r.codeMount, "codeMount", APP_DEFAULTS.codeMount, problems) ?? APP_DEFAULTS.codeMount;
  if (codeMount !== null && data !== null && (isWithin(codeMount, data) || isWithin(data, codeMount)))
    problems.push({
      path: "codeMount",
      message: `must not be ${data} (the data mount), inside it or above it`,
    });
  let port: number | null = null;
  if (r.port !== undefined && r.port !== null) {
    const n = Number(r.port);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      problems.push({ path: "port", message: "a port number 1-65535" });
    else port = n;
  }
  const health = parseHealth(r.health, problems);
  const stopTimeoutMs = durationField(
    r.stopTimeout,
    APP_DEFAULTS.stopTimeoutMs,
    "stopTimeout",
    problems,
    DURATION_LIMITS.stop,
  );
  const healthyDeadlineMs = durationField(
    r.healthyDeadline,
    APP_DEFAULTS.healthyDeadlineMs,
    "healthyDeadline",
    problems,
    DURATION_LIMITS.healthyDeadline,
  );
  if (health && healthyDeadlineMs <= health.minHealthyMs) {
    problems.push({ path: "healthyDeadline", message: "must be longer than health.minHealthy" });
  }
  if (problems.length > 0) {
    throw new GildError(
      "GILD_INVALID_SPEC",
      `invalid app spec (${problems.length} problem${problems.length > 1 ? "s" : ""})`,
      {
        details: { problems },
        hint: "fix every listed field and try again",
      },
    );
  }
  return Object.freeze({
    name,
    image,
    code,
    codeMount,
    hosts,
    command,
    env,
    data,
    port,
    health,
    stopTimeoutMs,
    healthyDeadlineMs,
  });
}

/** An absolute path inside the container (not /, no "..", no ":"), without trailing slashes; null when absent. */
function containerPath(raw: unknown, path: string, example: string, problems: FieldProblem[]): string | null {
  if (raw === undefined || raw === null) return null;
  if (
    typeof raw !== "string" ||
    !raw.startsWith("/") ||
    /^\/+$/.test(raw) ||
    raw.includes("..") ||
    raw.includes(":")
  ) {
    problems.push({ path, message: `an absolute path inside the container (not /), e.g. ${example}` });
    return null;
  }
  return raw.replace(/\/+$/, "");
}

/** `inner` is `outer` or below it. */
function isWithin(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(`${outer}/`);
}

/**
 * A stable fingerprint of what a generation runs (not where): command, env, mounts, probe, timeouts.
 * An app without code hashes as it did before apps had code.
 */
export function appSpecHash(spec: Omit<AppSpec, "hosts" | "healthyDeadlineMs">): string {
  const { name, image, code, codeMount, command, env, data, port, health, stopTimeoutMs } = spec;
  const canonical = JSON.stringify({
    name,
    image,
    ...(code ? { code, codeMount } : {}),
    command,
    env: Object.fromEntries(Object.entries(env).sort(([a], [b]) => a.localeCompare(b))),
    data,
    port,
    health,
    stopTimeoutMs,
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}
