/**
 * What the failed hosts of a rollout or host update have in common that the healthy ones do not:
 * "3 of 3 failed hosts have kernel 6.1.0-18; 0 of 12 healthy ones do". Pure, so the planner's callers,
 * the API and the CLI all say the same.
 */

/** One host as the clustering sees it: its outcome and its attributes (name -> value). */
export interface ClusterHost {
  hostId: string;
  outcome: "failed" | "healthy";
  /** e.g. { kernel: "6.1.0-18-amd64", agent: "0.4.0", from: "php@1", "label:zone": "b" } */
  attributes: Readonly<Record<string, string>>;
}

/** An attribute value many failed hosts share and few healthy ones do. */
export interface FailureCluster {
  attribute: string;
  value: string;
  /** Failed hosts with this value, and all failed hosts. */
  failedWith: number;
  failed: number;
  /** Healthy hosts with this value, and all healthy hosts. */
  healthyWith: number;
  healthy: number;
  /** The failed hosts with this value (ids), sorted. */
  hostIds: string[];
  /** The sentence an operator reads. */
  summary: string;
}

/** Fewer failed hosts than this say nothing in common worth reporting. */
export const MIN_FAILED_FOR_CLUSTERS = 2;
/** At most this many clusters, the strongest first. */
export const MAX_FAILURE_CLUSTERS = 5;

function share(count: number, total: number): number {
  return total === 0 ? 0 : count / total;
}

/** "have kernel 6.1.0-18", "have label zone=b", "came from php@1". */
function phraseOf(attribute: string, value: string): { failed: string; healthy: string } {
  if (attribute === "from") return { failed: `came from ${value}`, healthy: "did" };
  if (attribute.startsWith("label:"))
    return { failed: `have label ${attribute.slice("label:".length)}=${value}`, healthy: "do" };
  return { failed: `have ${attribute} ${value}`, healthy: "do" };
}

function summaryOf(c: Omit<FailureCluster, "summary">): string {
  const phrase = phraseOf(c.attribute, c.value);
  return `${c.failedWith} of ${c.failed} failed hosts ${phrase.failed}; ${c.healthyWith} of ${c.healthy} healthy ones ${phrase.healthy}`;
}

/**
 * The attribute values at least two failed hosts share, held by at least half of the failed hosts,
 * and by a share of the healthy hosts under half the failed share: strongest first (the widest
 * gap between the failed and the healthy share, then the most failed hosts, then by name), at most
 * MAX_FAILURE_CLUSTERS. Nothing when fewer than two hosts failed or none is healthy.
 */
export function clusterFailures(hosts: readonly ClusterHost[]): FailureCluster[] {
  const failed = hosts.filter((h) => h.outcome === "failed");
  const healthy = hosts.filter((h) => h.outcome === "healthy");
  // Without a healthy host, every attribute the failed ones share would look like a cause.
  if (failed.length < MIN_FAILED_FOR_CLUSTERS || healthy.length === 0) return [];
  const key = (attribute: string, value: string) => JSON.stringify([attribute, value]);
  const failedBy = new Map<string, { attribute: string; value: string; ids: string[] }>();
  for (const h of failed) {
    for (const [attribute, value] of Object.entries(h.attributes)) {
      if (value === "") continue;
      const k = key(attribute, value);
      const entry = failedBy.get(k) ?? { attribute, value, ids: [] };
      entry.ids.push(h.hostId);
      failedBy.set(k, entry);
    }
  }
  const clusters: Array<FailureCluster & { gap: number }> = [];
  for (const { attribute, value, ids } of failedBy.values()) {
    if (ids.length < MIN_FAILED_FOR_CLUSTERS) continue;
    const failedShare = share(ids.length, failed.length);
    if (failedShare < 0.5) continue;
    const healthyWith = healthy.filter((h) => h.attributes[attribute] === value).length;
    const healthyShare = share(healthyWith, healthy.length);
    if (healthyShare >= failedShare / 2) continue;
    const base = {
      attribute,
      value,
      failedWith: ids.length,
      failed: failed.length,
      healthyWith,
      healthy: healthy.length,
      hostIds: [...ids].sort(),
    };
    clusters.push({ ...base, summary: summaryOf(base), gap: failedShare - healthyShare });
  }
  clusters.sort(
    (a, b) =>
      b.gap - a.gap ||
      b.failedWith - a.failedWith ||
      a.attribute.localeCompare(b.attribute) ||
      a.value.localeCompare(b.value),
  );
  return clusters.slice(0, MAX_FAILURE_CLUSTERS).map(({ gap: _gap, ...c }) => c);
}
