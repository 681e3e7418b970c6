import { type FieldProblem, DURATION_LIMITS as L } from "./config-fields.js";
import { GildError } from "./errors.js";
import type { CountOrPercent, RolloutStrategy } from "./rollout-model.js";
import {
  countOrPercentProblem,
  deepFreeze,
  FAILURE_BUDGET,
  resolveBoolean,
  resolveCanary,
  resolveDuration,
  resolveEnum,
  resolvePositiveOrNull,
  resolveWaves,
  strategyObject,
  unknownFields,
} from "./strategy-fields.js";

export { parseCountOrPercent } from "./strategy-fields.js";

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

/** Resolve the operator's strategy: defaults applied, everything validated, frozen; every problem at once. */
export function resolveStrategy(raw: RawStrategy = {}): RolloutStrategy {
  const problems: FieldProblem[] = [];
  const input = strategyObject(raw, problems);
  if (input === null) throw invalid(problems);
  unknownFields(input, KNOWN_KEYS, problems);
  const d = DEFAULT_ROLLOUT_STRATEGY;
  const { canary, canaryHosts } = resolveCanary(input.canary, d.canary, problems);
  const strategy: RolloutStrategy = {
    canary,
    canaryHosts,
    waves: resolveWaves(input.waves, d.waves, problems),
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

function resolveMaxFailures(value: unknown, problems: FieldProblem[]): CountOrPercent {
  if (value === undefined) return { ...DEFAULT_ROLLOUT_STRATEGY.maxFailures };
  return (
    countOrPercentProblem(value, "maxFailures", problems, FAILURE_BUDGET) ?? {
      ...DEFAULT_ROLLOUT_STRATEGY.maxFailures,
    }
  );
}
