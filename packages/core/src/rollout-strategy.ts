import { durationField, type FieldProblem, DURATION_LIMITS as L } from "./config-fields.js";
import { GildError } from "./errors.js";
import type { CountOrPercent, RolloutStrategy } from "./rollout-model.js";

/** A duration as the operator writes it: `10s`, `5m`, `1h30m`, or a number of milliseconds. */
export type RawDuration = string | number;

/** The operator's strategy input (flags or a spec file); every field optional, the defaults apply. */
export interface RawStrategy {
  /** Canary host count (a number or digits), or host ids/names: a list, or one comma-separated string. */
  canary?: number | string | string[];
  /** Batch sizes after the canary: "25%", "3" or 3; the last repeats. */
  waves?: Array<string | number>;
  maxParallel?: number | string | null;
  prefetch?: boolean;
  minHealthy?: RawDuration;
  healthyDeadline?: RawDuration;
  progressDeadline?: RawDuration;
  bake?: RawDuration;
  canaryBake?: RawDuration;
  /** "0", "2", "10%" or a number. */
  maxFailures?: string | number;
  promote?: "manual" | "auto";
  onFailure?: "rollback" | "pause";
  rollbackMaxParallel?: number | string | null;
}

/** The defaults (README.md, Rollouts; docs/architecture.md, Rollouts). */
export const DEFAULT_ROLLOUT_STRATEGY: RolloutStrategy = Object.freeze({
  canary: 1,
  canaryHosts: null,
  waves: Object.freeze([Object.freeze({ percent: 25 }), Object.freeze({ percent: 100 })]) as CountOrPercent[],
  maxParallel: null,
  prefetch: true,
  minHealthyMs: 10_000,
  healthyDeadlineMs: 300_000,
  progressDeadlineMs: 600_000,
  bakeMs: 60_000,
  canaryBakeMs: 300_000,
  maxFailures: Object.freeze({ count: 0 }),
  promote: "manual",
  onFailure: "rollback",
  rollbackMaxParallel: null,
});

const KNOWN_KEYS = new Set([
  "canary",
  "waves",
  "maxParallel",
  "prefetch",
  "minHealthy",
  "healthyDeadline",
  "progressDeadline",
  "bake",
  "canaryBake",
  "maxFailures",
  "promote",
  "onFailure",
  "rollbackMaxParallel",
]);

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

/** Resolve the operator's strategy: defaults applied, everything validated, frozen; every problem at once. */
export function resolveStrategy(raw: RawStrategy = {}): RolloutStrategy {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw invalid([{ path: "", message: "the strategy must be an object" }]);
  }
  const problems: FieldProblem[] = [];
  const input = raw as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.has(key) && input[key] !== undefined) {
      problems.push({ path: key, message: `unknown strategy field "${key}"` });
    }
  }
  const d = DEFAULT_ROLLOUT_STRATEGY;
  const { canary, canaryHosts } = resolveCanary(input.canary, problems);
  const strategy: RolloutStrategy = {
    canary,
    canaryHosts,
    waves: resolveWaves(input.waves, problems),
    maxParallel: resolvePositiveOrNull(input.maxParallel, "maxParallel", d.maxParallel, problems),
    prefetch: resolveBoolean(input.prefetch, "prefetch", d.prefetch, problems),
    minHealthyMs: resolveDuration(input.minHealthy, "minHealthy", d.minHealthyMs, 0, L.minHealthy, problems),
    healthyDeadlineMs: resolveDuration(
      input.healthyDeadline,
      "healthyDeadline",
      d.healthyDeadlineMs,
      1,
      L.healthyDeadline,
      problems,
    ),
    progressDeadlineMs: resolveDuration(
      input.progressDeadline,
      "progressDeadline",
      d.progressDeadlineMs,
      1,
      L.rolloutClock,
      problems,
    ),
    bakeMs: resolveDuration(input.bake, "bake", d.bakeMs, 0, L.rolloutClock, problems),
    canaryBakeMs: resolveDuration(
      input.canaryBake,
      "canaryBake",
      d.canaryBakeMs,
      0,
      L.rolloutClock,
      problems,
    ),
    maxFailures: resolveMaxFailures(input.maxFailures, problems),
    promote: resolveEnum(input.promote, "promote", ["manual", "auto"] as const, d.promote, problems),
    onFailure: resolveEnum(
      input.onFailure,
      "onFailure",
      ["rollback", "pause"] as const,
      d.onFailure,
      problems,
    ),
    rollbackMaxParallel: resolvePositiveOrNull(
      input.rollbackMaxParallel,
      "rollbackMaxParallel",
      d.rollbackMaxParallel,
      problems,
    ),
  };
  // A host needs minHealthy of unbroken health before either deadline, or it could never pass.
  const clockFields = ["minHealthy", "healthyDeadline", "progressDeadline"];
  if (!problems.some((p) => clockFields.includes(p.path))) {
    const blame = input.minHealthy !== undefined ? "minHealthy" : null;
    if (strategy.healthyDeadlineMs <= strategy.minHealthyMs) {
      problems.push(
        blame
          ? { path: blame, message: "must be shorter than healthyDeadline" }
          : { path: "healthyDeadline", message: "must be longer than minHealthy" },
      );
    }
    if (strategy.progressDeadlineMs <= strategy.minHealthyMs) {
      problems.push(
        blame
          ? { path: blame, message: "must be shorter than progressDeadline" }
          : { path: "progressDeadline", message: "must be longer than minHealthy" },
      );
    }
  }
  if (problems.length > 0) throw invalid(problems);
  return deepFreeze(strategy);
}

function invalid(problems: FieldProblem[]): GildError {
  const list = problems.map((p) => `${p.path || "(strategy)"}: ${p.message}`).join("; ");
  return new GildError("GILD_INVALID_SPEC", `invalid rollout strategy: ${list}`, {
    hint: "fix every listed field; `gild rollout plan` checks a strategy without starting anything",
    details: { problems },
  });
}

function resolveCanary(
  value: unknown,
  problems: FieldProblem[],
): { canary: number; canaryHosts: string[] | null } {
  const fallback = { canary: DEFAULT_ROLLOUT_STRATEGY.canary, canaryHosts: null };
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

function resolveWaves(value: unknown, problems: FieldProblem[]): CountOrPercent[] {
  const fallback = DEFAULT_ROLLOUT_STRATEGY.waves.map((w) => ({ ...w }));
  if (value === undefined) return fallback;
  if (!Array.isArray(value) || value.length === 0) {
    problems.push({ path: "waves", message: 'must be a non-empty list of batch sizes like ["25%", "100%"]' });
    return fallback;
  }
  const waves: CountOrPercent[] = [];
  value.forEach((entry: unknown, i) => {
    const path = `waves[${i}]`;
    const parsed = countOrPercentProblem(entry, path, problems, WAVE_SIZE);
    if (parsed === null) return;
    if (("count" in parsed && parsed.count < 1) || ("percent" in parsed && parsed.percent <= 0)) {
      problems.push({ path, message: `a wave needs at least one host: ${WAVE_SIZE}` });
      return;
    }
    waves.push(parsed);
  });
  return waves.length === value.length ? waves : fallback;
}

function resolveMaxFailures(value: unknown, problems: FieldProblem[]): CountOrPercent {
  if (value === undefined) return { ...DEFAULT_ROLLOUT_STRATEGY.maxFailures };
  return (
    countOrPercentProblem(value, "maxFailures", problems, FAILURE_BUDGET) ?? {
      ...DEFAULT_ROLLOUT_STRATEGY.maxFailures,
    }
  );
}

// What each kind of count or percent accepts, said the way its problems say it.
const WAVE_SIZE = 'must be a host count of 1 or more, or a percentage above 0% up to 100%, like "25%"';
const FAILURE_BUDGET = 'must be a host count of 0 or more, or a percentage from 0% to 100%, like "10%"';

function countOrPercentProblem(
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

function resolvePositiveOrNull(
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

function resolveBoolean(value: unknown, path: string, fallback: boolean, problems: FieldProblem[]): boolean {
  if (value === undefined) return fallback;
  if (typeof value === "boolean") return value;
  problems.push({ path, message: "must be true or false" });
  return fallback;
}

function resolveDuration(
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

function resolveEnum<T extends string>(
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

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
