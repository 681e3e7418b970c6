import type { RolloutHostView, RolloutView } from "@gild/api-client";
import { type HostStep, isCanaryWave, rolloutReasonCode } from "@gild/core";
import type { ProgressUpdate } from "./command-service.js";
import { rolloutFailureClusters, viewClusters } from "./failure-attributes.js";
import type { StoredRollout } from "./store/rollouts-repo.js";
import type { Store } from "./store/store.js";

/** A rollout as the API, `gild rollout status` and the live view show it. */
export function rolloutView(
  stored: StoredRollout,
  deps: {
    store: Store;
    isOnline: (hostId: string) => boolean;
    progress: Map<string, ProgressUpdate> | undefined;
  },
): RolloutView {
  const r = stored.record;
  // One query for the names, not one per host: a rollout may cover thousands.
  const names = deps.store.hosts.names();
  const host = (id: string): RolloutHostView => {
    const { badPeers, ...step } = r.hosts[id] as HostStep;
    return {
      ...step,
      ...(badPeers
        ? { badPeers: badPeers.map((b) => ({ ...b, host: names.get(b.hostId) ?? b.hostId })) }
        : {}),
      name: names.get(id) ?? id,
      online: deps.isOnline(id),
      progress: deps.progress?.get(id) ?? null,
    };
  };
  return {
    id: r.id,
    line: r.line,
    version: r.version,
    image: `${r.line}@${r.version}`,
    versionStatus: deps.store.images.get(r.line, r.version)?.status ?? null,
    state: r.state,
    phase: r.phase,
    currentWave: r.currentWave,
    reason: r.reason,
    /** The error code that goes with the state and reason (GILD_ROLLOUT_FAILED, ...), or null. */
    reasonCode: rolloutReasonCode(r),
    pauseCause: r.pauseCause,
    createdBy: stored.createdBy,
    apps: stored.apps,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
    clocks: { progressDeadlineAt: r.progressDeadlineAt, bakeUntil: r.bakeUntil, pausedAt: r.pausedAt },
    strategy: r.strategy,
    waves: r.waves.map((ids, index) => ({ index, canary: isCanaryWave(r, index), hosts: ids.map(host) })),
    failureClusters: viewClusters(r, deps.store, rolloutFailureClusters),
  };
}
