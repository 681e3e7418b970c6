import { GildError } from "./errors.js";
import type { HostStep, RolloutRecord, RolloutStrategy } from "./rollout-model.js";
import { canaryFirstWaves, orderByHostHash, pickNamedCanaries } from "./wave-assignment.js";

export { batchSize, orderByHostHash, splitIntoWaves } from "./wave-assignment.js";

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
  const { waves, hasCanary } = canaryFirstWaves(ordered, canaries, strategy.waves);

  const hosts: Record<string, HostStep> = {};
  // By id, not a search per host: a rollout may cover 10,000 of them.
  const targetOf = new Map(outdated.map((t) => [t.hostId, t]));
  waves.forEach((wave, index) => {
    for (const hostId of wave) {
      const target = targetOf.get(hostId) as RolloutTarget;
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
    hasCanary,
    currentWave: 0,
    phase: "deploying",
    progressDeadlineAt: now + strategy.progressDeadlineMs,
    bakeUntil: null,
    waveStartedAt: null,
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
  return pickNamedCanaries(named, input.targets, {
    among: "the rollout's hosts",
    hint: "name canaries among the hosts that run apps of this line",
    // A canary that already runs the version would prove nothing about it.
    refuse: (target, name) =>
      outdated.some((t) => t.hostId === target.hostId)
        ? null
        : `host "${name}" already runs ${input.line}@${input.version}; name another canary`,
  });
}
