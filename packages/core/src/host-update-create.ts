import { GildError } from "./errors.js";
import type { HostUpdateRecord, HostUpdateStep, HostUpdateStrategy } from "./host-update-model.js";
import {
  canaryFirstWaves,
  orderByHostHash,
  pickNamedCanaries,
  type WaveCandidate,
} from "./wave-assignment.js";

/** What createHostUpdate needs: the command, a resolved strategy, the hosts, and who is busy. */
export interface CreateHostUpdateInput {
  id: string;
  /** A resolved command (resolveHostCommand). */
  argv: string[];
  /** A resolved strategy (resolveHostUpdateStrategy). */
  strategy: HostUpdateStrategy;
  /** The selected hosts (--hosts: names and label selectors, already matched). */
  targets: WaveCandidate[];
  /** Active host updates and the host ids each covers: a host is in one active job at most. */
  active: ReadonlyArray<{ id: string; hostIds: readonly string[] }>;
}

/** A new host-update job: canaries first, then waves; every host pending. */
export function createHostUpdate(input: CreateHostUpdateInput, now: number): HostUpdateRecord {
  const { strategy } = input;
  if (input.targets.length === 0) {
    throw new GildError("GILD_HOST_UPDATE_NO_HOSTS", "the host update selects no host", {
      hint: "check --hosts: names and key=value label selectors of joined hosts (`gild hosts`)",
    });
  }
  const ids = input.targets.map((t) => t.hostId);
  if (new Set(ids).size !== ids.length) throw new Error("createHostUpdate: a host is listed twice");
  for (const job of input.active) {
    const theirs = new Set(job.hostIds);
    const busy = ids.filter((id) => theirs.has(id));
    if (busy.length > 0) {
      const names = busy.map((id) => input.targets.find((t) => t.hostId === id)?.hostName ?? id);
      throw new GildError(
        "GILD_HOST_UPDATE_ACTIVE",
        `host update ${job.id} is still active on ${names.join(", ")}`,
        {
          hint: `wait for it (\`gild host-update status ${job.id}\`), or stop it with \`gild host-update abort ${job.id}\``,
          details: { activeHostUpdateId: job.id, hostIds: busy },
        },
      );
    }
  }
  const ordered = orderByHostHash(ids);
  const canaries =
    strategy.canaryHosts === null
      ? ordered.slice(0, Math.min(strategy.canary, ordered.length))
      : pickNamedCanaries(strategy.canaryHosts, input.targets, {
          among: "the host update's hosts",
          hint: "name canaries among the hosts that --hosts selects",
        });
  const { waves, hasCanary } = canaryFirstWaves(ordered, canaries, strategy.waves);
  const hosts: Record<string, HostUpdateStep> = {};
  waves.forEach((wave, index) => {
    for (const hostId of wave) {
      hosts[hostId] = {
        hostId,
        wave: index,
        state: "pending",
        deadlineAt: null,
        reason: null,
        startedAt: null,
        rebootedAt: null,
        exitCode: null,
        doneAt: null,
      };
    }
  });
  return {
    id: input.id,
    argv: [...input.argv],
    strategy,
    state: "running",
    waves,
    hasCanary,
    currentWave: 0,
    phase: "updating",
    bakeUntil: null,
    pausedAt: null,
    pauseCause: null,
    acceptedFailures: [],
    reason: null,
    hosts,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
}
