import {
  type ClusterHost,
  clusterFailures,
  type FailureCluster,
  type HostState,
  type HostUpdateHostState,
  type HostUpdateRecord,
  MIN_FAILED_FOR_CLUSTERS,
  type RolloutRecord,
  type WaveJobEvent,
} from "@gild/core";
import type { HostRecord } from "./store/hosts-repo.js";
import type { Store } from "./store/store.js";

const ROLLOUT_FAILED: ReadonlySet<HostState> = new Set(["failed", "rolled-back", "rollback-failed"]);
const HOST_UPDATE_FAILED: ReadonlySet<HostUpdateHostState> = new Set(["failed"]);

/** What a host is known by, for comparing failed hosts with healthy ones: kernel, agent, os, labels. */
function attributesOf(host: HostRecord | undefined): Record<string, string> {
  if (!host) return {};
  const attributes: Record<string, string> = {};
  if (host.kernelVersion) attributes.kernel = host.kernelVersion;
  if (host.agentVersion) attributes.agent = host.agentVersion;
  if (host.facts.os) attributes.os = host.facts.os;
  for (const [key, value] of Object.entries(host.labels)) attributes[`label:${key}`] = value;
  return attributes;
}

/** The failed hosts of a rollout against its healthy ones; "from" is the version a host came from. */
export function rolloutFailureClusters(
  record: RolloutRecord,
  known: ReadonlyMap<string, HostRecord>,
): FailureCluster[] {
  const hosts: ClusterHost[] = [];
  for (const step of Object.values(record.hosts)) {
    const outcome = ROLLOUT_FAILED.has(step.state) ? "failed" : step.state === "healthy" ? "healthy" : null;
    if (!outcome) continue;
    const attributes = attributesOf(known.get(step.hostId));
    if (step.fromVersion !== null) attributes.from = `${record.line}@${step.fromVersion}`;
    hosts.push({ hostId: step.hostId, outcome, attributes });
  }
  return clusterFailures(hosts);
}

/** The failed hosts of a host update against the ones it updated. */
export function hostUpdateFailureClusters(
  record: HostUpdateRecord,
  known: ReadonlyMap<string, HostRecord>,
): FailureCluster[] {
  const hosts: ClusterHost[] = [];
  for (const step of Object.values(record.hosts)) {
    const outcome = HOST_UPDATE_FAILED.has(step.state) ? "failed" : step.state === "done" ? "healthy" : null;
    if (outcome)
      hosts.push({ hostId: step.hostId, outcome, attributes: attributesOf(known.get(step.hostId)) });
  }
  return clusterFailures(hosts);
}

type Steps = Readonly<Record<string, { state: string }>>;

/** How many of a job's hosts failed and how many are healthy: clusters change only when these do. */
function outcomeCounts(hosts: Steps): { failed: number; healthy: number } {
  let failed = 0;
  let healthy = 0;
  for (const step of Object.values(hosts)) {
    if (
      ROLLOUT_FAILED.has(step.state as HostState) ||
      HOST_UPDATE_FAILED.has(step.state as HostUpdateHostState)
    )
      failed++;
    else if (step.state === "healthy" || step.state === "done") healthy++;
  }
  return { failed, healthy };
}

/** Whether a step changed how many hosts failed or are healthy (cheap; clustering is not). */
export function outcomesChanged(before: Steps, after: Steps): boolean {
  const a = outcomeCounts(before);
  const b = outcomeCounts(after);
  return a.failed !== b.failed || a.healthy !== b.healthy;
}

/**
 * The event that says what the failed hosts share, when a step changed it (a host failed, or one
 * turned healthy and ruled a cluster out): null when nothing changed or nothing is shared now.
 */
export function failureClusterEvent(
  before: readonly FailureCluster[],
  after: readonly FailureCluster[],
  at: number,
): WaveJobEvent<"failure-cluster"> | null {
  const text = (clusters: readonly FailureCluster[]) => clusters.map((c) => c.summary).join("; ");
  if (after.length === 0 || text(before) === text(after)) return null;
  return { at, kind: "failure-cluster", message: `failures in common: ${text(after)}` };
}

/** A view's clusters: the hosts are read only when two or more failed (a job may cover thousands). */
export function viewClusters<R extends { hosts: Steps }>(
  record: R,
  store: Store,
  clusters: (record: R, known: ReadonlyMap<string, HostRecord>) => FailureCluster[],
): FailureCluster[] {
  if (outcomeCounts(record.hosts).failed < MIN_FAILED_FOR_CLUSTERS) return [];
  return clusters(record, new Map(store.hosts.list().map((h) => [h.id, h])));
}
