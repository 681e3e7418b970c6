import { type FieldProblem, DURATION_LIMITS as L } from "./config-fields.js";
import { GildError } from "./errors.js";
import type { HostUpdateStrategy, RebootPolicy } from "./host-update-model.js";
import type { RawDuration } from "./rollout-strategy.js";
import {
  deepFreeze,
  resolveCanary,
  resolveDuration,
  resolveEnum,
  resolveHostCount,
  resolveWaves,
  strategyObject,
  unknownFields,
} from "./strategy-fields.js";

/** The operator's host-update strategy (flags or a file); every field optional, the defaults apply. */
export interface RawHostUpdateStrategy {
  /** Canary host count (a number or digits), or host ids/names: a list, or one comma-separated string. */
  canary?: number | string | string[];
  /** Batch sizes after the canary: "25%", "3" or 3; the last repeats. */
  waves?: Array<string | number>;
  /** Hosts of a wave in flight at once: "2", 2 or "10%" (of all the job's hosts). */
  maxUnavailable?: string | number;
  reboot?: RebootPolicy;
  commandTimeout?: RawDuration;
  deadline?: RawDuration;
  minHealthy?: RawDuration;
  bake?: RawDuration;
  onFailure?: "pause" | "fail";
}

/** The defaults (docs/architecture.md, Host updates). */
export const DEFAULT_HOST_UPDATE_STRATEGY: HostUpdateStrategy = deepFreeze({
  canary: 1,
  canaryHosts: null,
  waves: [{ percent: 25 }, { percent: 100 }],
  maxUnavailable: { count: 1 },
  reboot: "if-required",
  commandTimeoutMs: 30 * 60_000,
  deadlineMs: 10 * 60_000,
  minHealthyMs: 10_000,
  bakeMs: 60_000,
  onFailure: "pause",
});

const KNOWN_KEYS = new Set([
  "canary",
  "waves",
  "maxUnavailable",
  "reboot",
  "commandTimeout",
  "deadline",
  "minHealthy",
  "bake",
  "onFailure",
]);

export const REBOOT_POLICIES: readonly RebootPolicy[] = ["never", "if-required", "always"];

/** Resolve the operator's host-update strategy: defaults applied, validated, frozen; every problem at once. */
export function resolveHostUpdateStrategy(raw: RawHostUpdateStrategy = {}): HostUpdateStrategy {
  const problems: FieldProblem[] = [];
  const input = strategyObject(raw, problems);
  if (input === null) throw invalid(problems);
  unknownFields(input, KNOWN_KEYS, problems);
  const d = DEFAULT_HOST_UPDATE_STRATEGY;
  const { canary, canaryHosts } = resolveCanary(input.canary, d.canary, problems);
  const strategy: HostUpdateStrategy = {
    canary,
    canaryHosts,
    waves: resolveWaves(input.waves, d.waves, problems),
    maxUnavailable: resolveHostCount(input.maxUnavailable, "maxUnavailable", d.maxUnavailable, problems),
    reboot: resolveEnum(input.reboot, "reboot", REBOOT_POLICIES, d.reboot, problems),
    commandTimeoutMs: resolveDuration(
      input.commandTimeout,
      "commandTimeout",
      d.commandTimeoutMs,
      1,
      L.healthyDeadline,
      problems,
    ),
    deadlineMs: resolveDuration(input.deadline, "deadline", d.deadlineMs, 1, L.healthyDeadline, problems),
    minHealthyMs: resolveDuration(input.minHealthy, "minHealthy", d.minHealthyMs, 0, L.minHealthy, problems),
    bakeMs: resolveDuration(input.bake, "bake", d.bakeMs, 0, L.rolloutClock, problems),
    onFailure: resolveEnum(input.onFailure, "onFailure", ["pause", "fail"] as const, d.onFailure, problems),
  };
  // Apps need minHealthy of unbroken health before the deadline, or no host could pass.
  if (
    !problems.some((p) => p.path === "deadline" || p.path === "minHealthy") &&
    strategy.deadlineMs <= strategy.minHealthyMs
  ) {
    problems.push(
      input.minHealthy !== undefined
        ? { path: "minHealthy", message: "must be shorter than deadline" }
        : { path: "deadline", message: "must be longer than minHealthy" },
    );
  }
  if (problems.length > 0) throw invalid(problems);
  return deepFreeze(strategy);
}

function invalid(problems: FieldProblem[]): GildError {
  const list = problems.map((p) => `${p.path || "(strategy)"}: ${p.message}`).join("; ");
  return new GildError("GILD_INVALID_SPEC", `invalid host-update strategy: ${list}`, {
    hint: "fix every listed field; `gild host-update plan` checks a strategy without starting anything",
    details: { problems },
  });
}

/** The operator's command: an argv, or one shell text (run as /bin/sh -c, as the operator wrote it). */
export type RawHostCommand = { argv: string[] } | { shell: string };

/** Most bytes a command's argv may hold in all: it travels in one frame, and is shown in every status. */
export const MAX_HOST_COMMAND_BYTES = 16 * 1024;

/**
 * The argv a host runs. A shell text is the operator's own program for the host's shell, so it is
 * handed to /bin/sh unchanged: gild builds no command string of its own.
 */
export function resolveHostCommand(raw: unknown): string[] {
  const problems: FieldProblem[] = [];
  const input = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  const hasArgv = input.argv !== undefined;
  const hasShell = input.shell !== undefined;
  let argv: string[] = [];
  if (hasArgv === hasShell) {
    problems.push({ path: "command", message: "give either argv (a list) or shell (one text), not both" });
  } else if (hasShell) {
    if (typeof input.shell !== "string" || input.shell.trim() === "")
      problems.push({ path: "shell", message: "must be a non-empty text" });
    else argv = ["/bin/sh", "-c", input.shell];
  } else if (!Array.isArray(input.argv) || input.argv.length === 0) {
    problems.push({ path: "argv", message: "must be a non-empty list of strings" });
  } else {
    input.argv.forEach((arg: unknown, i) => {
      if (typeof arg !== "string") problems.push({ path: `argv[${i}]`, message: "must be a string" });
      else if (i === 0 && arg.trim() === "")
        problems.push({ path: "argv[0]", message: "must name the program" });
    });
    if (problems.length === 0) argv = [...(input.argv as string[])];
  }
  for (const [i, arg] of argv.entries()) {
    if (arg.includes("\0")) problems.push({ path: `argv[${i}]`, message: "must not contain a NUL byte" });
  }
  if (argv.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0) > MAX_HOST_COMMAND_BYTES)
    problems.push({ path: "command", message: `must be at most ${MAX_HOST_COMMAND_BYTES} bytes in all` });
  if (problems.length > 0) {
    const list = problems.map((p) => `${p.path}: ${p.message}`).join("; ");
    throw new GildError("GILD_INVALID_SPEC", `invalid host command: ${list}`, {
      hint: "give --command 'TEXT' (run by /bin/sh -c) or --argv PROGRAM --argv ARG ...",
      details: { problems },
    });
  }
  return argv;
}
