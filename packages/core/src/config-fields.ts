import { GildError } from "./errors.js";
import { formatDuration, parseDuration, parseSize } from "./units.js";

/** One problem of a spec or config, with the path of the field it concerns. */
export interface FieldProblem {
  path: string;
  message: string;
}

/**
 * Upper bounds of durations, by what they time. Each is documented (docs/configuration.md, docs/cli.md)
 * and a longer value is refused with its path. Reasons: probes and stops act within minutes; a health
 * streak or a healthy deadline travels to agents as 32-bit milliseconds (49 days) and a week is plenty;
 * bakes and rollout deadlines may be weeks (the executor's timers wait that long, see long-timer.ts);
 * a liveness interval of hours would leave a dead host "online" for hours.
 */
export const DURATION_LIMITS = {
  probe: 3_600_000,
  stop: 3_600_000,
  minHealthy: 86_400_000,
  healthyDeadline: 7 * 86_400_000,
  rolloutClock: 90 * 86_400_000,
  liveness: 300_000,
  offlineGrace: 86_400_000,
  tokenTtl: 30 * 86_400_000,
  agentTimer: 3_600_000,
  handshake: 60_000,
} as const;

/** Absent (undefined, or null as YAML writes an empty value) means the fallback; numbers are whole. */
function parsedField(
  value: unknown,
  fallback: number,
  path: string,
  problems: FieldProblem[],
  parse: (text: string, what: string) => number,
  example: string,
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return Math.round(value);
  try {
    if (typeof value !== "string") throw new Error(`${path} must be ${example}`);
    return parse(value, path);
  } catch (err) {
    problems.push({ path, message: (err as Error).message });
    return fallback;
  }
}

/**
 * A duration setting (`10s`, or milliseconds as a number) of at most `maxMs`; a bad or too long one is
 * listed in `problems` (and the fallback returned).
 */
export function durationField(
  value: unknown,
  fallback: number,
  path: string,
  problems: FieldProblem[],
  maxMs: number,
): number {
  const before = problems.length;
  const ms = parsedField(value, fallback, path, problems, parseDuration, "a duration like 10s");
  if (problems.length === before && ms > maxMs) {
    problems.push({ path, message: `must be at most ${formatDuration(maxMs)}` });
    return fallback;
  }
  return ms;
}

/**
 * A whole-number setting between `min` and `max` (a number, or digits as a flag gives them); a bad one is
 * listed in `problems` (and the fallback returned).
 */
export function countField(
  raw: unknown,
  fallback: number,
  path: string,
  problems: FieldProblem[],
  bounds: { min: number; max: number },
): number {
  if (raw === undefined || raw === null) return fallback;
  const value = typeof raw === "string" && /^\d{1,15}$/.test(raw) ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < bounds.min || value > bounds.max) {
    problems.push({ path, message: `must be a whole number from ${bounds.min} to ${bounds.max}` });
    return fallback;
  }
  return value;
}

/** A size or rate setting (`50MiB`, or bytes as a number); a bad one is listed in `problems`. */
export function sizeField(value: unknown, fallback: number, path: string, problems: FieldProblem[]): number {
  return parsedField(value, fallback, path, problems, parseSize, "a size like 50MiB");
}

/** Every key of `raw` that is not a known setting, as problems. */
export function unknownFields(
  raw: object,
  known: readonly string[],
  problems: FieldProblem[],
  prefix = "",
): void {
  for (const key of Object.keys(raw))
    if (!known.includes(key)) problems.push({ path: `${prefix}${key}`, message: "unknown setting" });
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The logLevel setting (default info); a level pino does not know is listed in `problems`. */
export function logLevelField(value: string | undefined, problems: FieldProblem[]): string {
  const level = value ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    problems.push({ path: "logLevel", message: `one of ${LOG_LEVELS.join(", ")}` });
  return level;
}

/** Throw GILD_CONFIG_INVALID listing every problem, if there is any. */
export function assertNoConfigProblems(what: string, problems: readonly FieldProblem[]): void {
  if (problems.length === 0) return;
  throw new GildError("GILD_CONFIG_INVALID", `invalid ${what} configuration (${problems.length} problems)`, {
    details: { problems },
  });
}
