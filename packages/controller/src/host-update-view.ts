import type { HostUpdateHostView, HostUpdateView } from "@gild/api-client";
import { type HostUpdateStep, isCanaryWave, isSettledHostUpdate } from "@gild/core";
import { hostUpdateFailureClusters, viewClusters } from "./failure-attributes.js";
import { hostUpdateCommandId, outputTailOf } from "./host-update-observer.js";
import type { StoredHostUpdate } from "./store/host-updates-repo.js";
import type { Store } from "./store/store.js";

/** A host update as the API and `gild host-update status` show it. */
export function hostUpdateView(
  stored: StoredHostUpdate,
  deps: { store: Store; isOnline: (hostId: string) => boolean },
): HostUpdateView {
  const r = stored.record;
  const names = deps.store.hosts.names();
  const rows = new Map(deps.store.commands.forRollout(r.id).map((c) => [c.id, c]));
  const host = (id: string): HostUpdateHostView => ({
    ...(r.hosts[id] as HostUpdateStep),
    name: names.get(id) ?? id,
    online: deps.isOnline(id),
    outputTail: outputTailOf(rows.get(hostUpdateCommandId(r.id, { kind: "run", hostId: id }))),
  });
  return {
    id: r.id,
    argv: r.argv,
    state: r.state,
    phase: r.phase,
    currentWave: r.currentWave,
    reason: r.reason,
    reasonCode: r.state === "failed" ? "GILD_HOST_UPDATE_FAILED" : null,
    pauseCause: r.pauseCause,
    settled: isSettledHostUpdate(r),
    createdBy: stored.createdBy,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
    clocks: { bakeUntil: r.bakeUntil, pausedAt: r.pausedAt },
    strategy: r.strategy,
    waves: r.waves.map((ids, index) => ({ index, canary: isCanaryWave(r, index), hosts: ids.map(host) })),
    failureClusters: viewClusters(r, deps.store, hostUpdateFailureClusters),
  };
}
