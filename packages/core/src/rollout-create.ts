import { createHash } from "node:crypto";
import type { FieldProblem } from "./config-fields.js";
import { GildError } from "./errors.js";
import type { CountOrPercent, HostStep, RolloutRecord, RolloutStrategy } from "./rollout-model.js";

/** A host the rollout may target: it runs apps of the line (already filtered by --hosts / --apps). */
export interface RolloutTarget {
  hostId: string;
  /** The host's name, so canaries can be named by name as well as by id. */
  hostName?: string;
  apps: Array<{ name: string; version: number }>;
}

/** What createRollout needs: the target version, a resolved strategy, the hosts, the line's active rollouts. */
export interface CreateRolloutInput {
  id: string;
  line: string;
  version: number;
  /** A resolved strategy (resolveStrategy). */
  strategy: RolloutStrategy;
  targets: RolloutTarget[];
  /** Ids of the rollouts of this line that are not terminal. */
  activeRolloutIds: string[];
}

/** Host ids ordered by the sha256 hex of the id: a stable order that does not depend on input order. */
export function orderByHostHash(hostIds: readonly string[]): string[] {
  const keyed = hostIds.map((id) => ({ id, key: createHash("sha256").update(id).digest("hex") }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return keyed.map((k) => k.id);
}

/** Hosts in one batch of `total` for a wave entry: a percent rounds up to at least one host. */
export function batchSize(entry: CountOrPercent, total: number): number {
  if ("count" in entry) return entry.count;
  // The epsilon keeps 10% of 30 at 3 despite float error.
  return Math.max(1, Math.ceil((entry.percent * total) / 100 - 1e-9));
}

/** Split hosts into batches: entry i sizes batch i, the last entry repeats; percents are of all hosts. */
export function splitIntoWaves(hostIds: readonly string[], waves: readonly CountOrPercent[]): string[][] {
  if (waves.length === 0) throw new Error("splitIntoWaves needs at least one wave entry");
  const out: string[][] = [];
  let next = 0;
  while (next < hostIds.length) {
    const entry = waves[Math.min(out.length, waves.length - 1)] as CountOrPercent;
    const size = Math.max(1, Math.min(batchSize(entry, hostIds.length), hostIds.length - next));
    out.push(hostIds.slice(next, next + size));
    next += size;
  }
  return out;
}

/** A new rollout record: checks the line is free, drops up-to-date hosts, picks canaries and waves. */
export function createRollout(input: CreateRolloutInput, now: number): RolloutRecord {
  const { strategy } = input;
  const ref = `${input.line}@${input.version}`;
  if (input.activeRolloutIds.length > 0) {
    throw new GildError("GILD_ROLLOUT_ACTIVE", `a rollout of ${input.line} is already active`, {
      hint: `wait for it, or stop it with \`gild rollout abort ${input.activeRolloutIds[0]}\``,
      details: { activeRolloutIds: [...input.activeRolloutIds] },
    });
  }
  if (input.targets.length === 0) {
    throw new GildError("GILD_ROLLOUT_NO_HOSTS", `no host runs an app on image line ${input.line}`, {
      hint: "check --hosts and --apps, and `gild app ls` for the apps on this line",
    });
  }
  const seen = new Set<string>();
  for (const target of input.targets) {
    if (seen.has(target.hostId)) throw new Error(`createRollout: host ${target.hostId} is listed twice`);
    seen.add(target.hostId);
  }
  const outdated = input.targets.filter((t) => t.apps.some((app) => app.version !== input.version));
  if (outdated.length === 0) {
    throw new GildError("GILD_ROLLOUT_NOOP", `${ref} is already running everywhere`, {
      hint: "nothing to roll out; `gild app ls` shows the version of every app",
    });
  }

  const ordered = orderByHostHash(outdated.map((t) => t.hostId));
  const canaries = pickCanaries(input, outdated, ordered);
  const rest = ordered.filter((id) => !canaries.includes(id));
  const waves = [...(canaries.length > 0 ? [canaries] : []), ...splitIntoWaves(rest, strategy.waves)];

  const hosts: Record<string, HostStep> = {};
  waves.forEach((wave, index) => {
    for (const hostId of wave) {
      const target = outdated.find((t) => t.hostId === hostId) as RolloutTarget;
      hosts[hostId] = {
        hostId,
        wave: index,
        state: "pending",
        fetchAttempts: 0,
        deadlineAt: null,
        reason: null,
        fromVersion: Math.min(...target.apps.map((app) => app.version)),
        switchedAt: null,
        healthyAt: null,
        rollbackPending: false,
      };
    }
  });

  return {
    id: input.id,
    line: input.line,
    version: input.version,
    strategy,
    state: "running",
    waves,
    hasCanary: canaries.length > 0,
    currentWave: 0,
    phase: "deploying",
    progressDeadlineAt: now + strategy.progressDeadlineMs,
    bakeUntil: null,
    pausedAt: null,
    resumeState: null,
    pauseCause: null,
    acceptedFailures: [],
    rollbackParallel: null,
    reason: null,
    rollbackOutcome: null,
    hosts,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
}

/** Named canaries (each must be a target that needs the version), else the first `canary` by hash. */
function pickCanaries(input: CreateRolloutInput, outdated: RolloutTarget[], ordered: string[]): string[] {
  const named = input.strategy.canaryHosts;
  if (named === null) return ordered.slice(0, Math.min(input.strategy.canary, ordered.length));
  const problems: FieldProblem[] = [];
  const picked: string[] = [];
  named.forEach((name, i) => {
    const match = (t: RolloutTarget) => t.hostId === name || t.hostName === name;
    const target = input.targets.find(match);
    if (target === undefined) {
      problems.push({ path: `canary[${i}]`, message: `host "${name}" is not among the rollout's hosts` });
    } else if (!outdated.includes(target)) {
      // A canary that already runs the version would prove nothing about it.
      problems.push({
        path: `canary[${i}]`,
        message: `host "${name}" already runs ${input.line}@${input.version}; name another canary`,
      });
    } else if (!picked.includes(target.hostId)) {
      picked.push(target.hostId);
    }
  });
  if (problems.length > 0) {
    throw new GildError(
      "GILD_INVALID_SPEC",
      `invalid canary hosts: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      { hint: "name canaries among the hosts that run apps of this line", details: { problems } },
    );
  }
  return picked;
}
