import { durationField, type FieldProblem } from "./config-fields.js";
import { GildError } from "./errors.js";
import type { CountOrPercent } from "./rollout-model.js";

// Field resolvers shared by the strategies of wave jobs (rollouts, host updates): each reads one raw
// field, returns its value or the fallback, and lists a problem with the field's path instead of
// throwing, so a strategy reports every problem at once.

/** Parse a host count or a percentage: `3`, `"3"`, `"25%"`, `"12.5%"`. */
export function parseCountOrPercent(value: string | number, what = "value"): CountOrPercent {
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0) return { count: value };
  } else if (typeof value === "string") {
    const text = value.trim();
    if (/^[0-9]+$/.test(text)) return { count: Number(text) };
    const pct = /^([0-9]+(?:\.[0-9]+)?)\s*%$/.exec(text);
    if (pct && Number(pct[1]) <= 100) return { percent: Number(pct[1]) };
  }
  throw new GildError("GILD_BAD_REQUEST", `invalid ${what} "${String(value)}"`, {
    hint: 'write a host count like 3 or a percentage up to 100% like "25%"',
  });
}

/** The raw strategy as a record, or null (with a problem) when it is not an object. */
export function strategyObject(raw: unknown, problems: FieldProblem[]): Record<string, unknown> | null {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    problems.push({ path: "", message: "the strategy must be an object" });
    return null;
  }
  return raw as Record<string, unknown>;
}

/** List every key of `input` that is not in `known` (an undefined value counts as absent). */
export function unknownFields(
  input: Record<string, unknown>,
  known: ReadonlySet<string>,
  problems: FieldProblem[],
): void {
  for (const key of Object.keys(input)) {
    if (!known.has(key) && input[key] !== undefined) {
      problems.push({ path: key, message: `unknown strategy field "${key}"` });
    }
  }
}

/** Canaries: a count (a number or digits), or host ids/names (a list, or one comma-separated string). */
export function resolveCanary(
  value: unknown,
  fallbackCount: number,
  problems: FieldProblem[],
): { canary: number; canaryHosts: string[] | null } {
  const fallback = { canary: fallbackCount, canaryHosts: null };
  if (value === undefined) return fallback;
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0) return { canary: value, canaryHosts: null };
    problems.push({
      path: "canary",
      message: "must be a whole number of hosts (0 for none) or a list of hosts",
    });
    return fallback;
  }
  let names: unknown[];
  if (typeof value === "string") {
    if (/^\s*[0-9]+\s*$/.test(value)) return { canary: Number(value), canaryHosts: null };
    names = value.split(",").map((name) => name.trim());
  } else if (Array.isArray(value)) {
    names = value;
  } else {
    problems.push({ path: "canary", message: "must be a number of hosts or a list of host ids or names" });
    return fallback;
  }
  if (names.length === 0) {
    problems.push({ path: "canary", message: "name at least one host, or give 0 for no canary" });
    return fallback;
  }
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (typeof name !== "string" || name.trim() === "") {
      problems.push({ path: `canary[${i}]`, message: "must be a non-empty host id or name" });
    } else if (seen.has(name)) {
      problems.push({ path: `canary[${i}]`, message: `host "${name}" is named twice` });
    } else {
      seen.add(name);
    }
  });
  return { canary: seen.size, canaryHosts: [...seen] };
}

// What each kind of count or percent accepts, said the way its problems say it.
const WAVE_SIZE = 'must be a host count of 1 or more, or a percentage above 0% up to 100%, like "25%"';
export const FAILURE_BUDGET =
  'must be a host count of 0 or more, or a percentage from 0% to 100%, like "10%"';

/** A host count of 1 or more, or a percentage above 0% (a wave's size, a parallelism). */
export function resolveHostCount(
  value: unknown,
  path: string,
  fallback: CountOrPercent,
  problems: FieldProblem[],
): CountOrPercent {
  if (value === undefined) return { ...fallback };
  return hostCount(value, path, "needs at least one host", problems) ?? { ...fallback };
}

/** A count of 1 or more or a percent above 0, or null with a problem (`none` says why zero is refused). */
function hostCount(
  value: unknown,
  path: string,
  none: string,
  problems: FieldProblem[],
): CountOrPercent | null {
  const parsed = countOrPercentProblem(value, path, problems, WAVE_SIZE);
  if (parsed === null) return null;
  if (("count" in parsed && parsed.count < 1) || ("percent" in parsed && parsed.percent <= 0)) {
    problems.push({ path, message: `${none}: ${WAVE_SIZE}` });
    return null;
  }
  return parsed;
}

/** Batch sizes after the canary ("25%", "3" or 3); the last repeats. */
export function resolveWaves(
  value: unknown,
  fallback: readonly CountOrPercent[],
  problems: FieldProblem[],
): CountOrPercent[] {
  const copy = () => fallback.map((w) => ({ ...w }));
  if (value === undefined) return copy();
  if (!Array.isArray(value) || value.length === 0) {
    problems.push({ path: "waves", message: 'must be a non-empty list of batch sizes like ["25%", "100%"]' });
    return copy();
  }
  const waves: CountOrPercent[] = [];
  value.forEach((entry: unknown, i) => {
    const parsed = hostCount(entry, `waves[${i}]`, "a wave needs at least one host", problems);
    if (parsed !== null) waves.push(parsed);
  });
  return waves.length === value.length ? waves : copy();
}

/** A count or percent by `rule`, or null with a problem. */
export function countOrPercentProblem(
  value: unknown,
  path: string,
  problems: FieldProblem[],
  rule: string,
): CountOrPercent | null {
  if (typeof value !== "string" && typeof value !== "number") {
    problems.push({ path, message: rule });
    return null;
  }
  try {
    return parseCountOrPercent(value, path);
  } catch (err) {
    if (!(err instanceof GildError)) throw err;
    problems.push({ path, message: rule });
    return null;
  }
}

export function resolvePositiveOrNull(
  value: unknown,
  path: string,
  fallback: number | null,
  problems: FieldProblem[],
): number | null {
  if (value === undefined) return fallback;
  if (value === null) return null;
  const n = typeof value === "string" && /^\s*[0-9]+\s*$/.test(value) ? Number(value) : value;
  if (typeof n === "number" && Number.isInteger(n) && n >= 1) return n;
  problems.push({ path, message: "must be a whole number of hosts >= 1, or null for no limit" });
  return fallback;
}

export function resolveBoolean(
  value: unknown,
  path: string,
  fallback: boolean,
  problems: FieldProblem[],
): boolean {
  if (value === undefined) return fallback;
  if (typeof value === "boolean") return value;
  problems.push({ path, message: "must be true or false" });
  return fallback;
}

/** A duration of at least `min` and at most `max` milliseconds. */
export function resolveDuration(
  value: unknown,
  path: string,
  fallback: number,
  min: number,
  max: number,
  problems: FieldProblem[],
): number {
  const before = problems.length;
  const ms = durationField(value, fallback, path, problems, max);
  if (problems.length === before && ms < min) {
    problems.push({ path, message: "must be longer than zero" });
    return fallback;
  }
  return ms;
}

export function resolveEnum<T extends string>(
  value: unknown,
  path: string,
  allowed: readonly T[],
  fallback: T,
  problems: FieldProblem[],
): T {
  if (value === undefined) return fallback;
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  problems.push({ path, message: `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}` });
  return fallback;
}

/** Freeze a resolved strategy all the way down: it is shared, never changed. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
