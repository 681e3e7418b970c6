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
  // for-in, not Object.values: no array of 10,000 steps on every planning step.
  for (const id in hosts) {
    const state = (hosts[id] as { state: string }).state;
    if (ROLLOUT_FAILED.has(state as HostState) || HOST_UPDATE_FAILED.has(state as HostUpdateHostState))
      failed++;
    else if (state === "healthy" || state === "done") healthy++;
  }
  return { failed, healthy };
}

/**
 * The event that says what the failed hosts share, when a planning step changed it (a host failed, or
 * one turned healthy and ruled a cluster out): null when nothing changed or nothing is shared now.
 * Cheap on the steps that matter at scale: with fewer than two failed hosts after the step there is no
 * cluster to tell of, so neither record is clustered, nor the one before counted.
 */
export function failureClusterChange<R extends { hosts: Steps }>(
  before: R,
  after: R,
  clusters: (record: R, known: ReadonlyMap<string, HostRecord>) => FailureCluster[],
  known: ReadonlyMap<string, HostRecord>,
  at: number,
): WaveJobEvent<"failure-cluster"> | null {
  const now = outcomeCounts(after.hosts);
  if (now.failed < MIN_FAILED_FOR_CLUSTERS) return null;
  const then = outcomeCounts(before.hosts);
  if (then.failed === now.failed && then.healthy === now.healthy) return null;
  return failureClusterEvent(clusters(before, known), clusters(after, known), at);
}

/** The event for a change of clusters: null when what is shared did not change, or nothing is. */
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
