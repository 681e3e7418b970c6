import { createRollout, type HostStep, type RolloutRecord, resolveStrategy } from "@gild/core";
import { describe, expect, it } from "vitest";
import {
  failureClusterChange,
  failureClusterEvent,
  rolloutFailureClusters,
} from "../src/failure-attributes.js";
import type { HostRecord } from "../src/store/hosts-repo.js";

const T0 = 1_700_000_000_000;

function hostRecord(id: string, kernel: string, labels: Record<string, string> = {}): HostRecord {
  return {
    id,
    name: id,
    labels,
    state: "online",
    lastSeen: T0,
    joinedAt: T0,
    agentVersion: "0.4.0",
    protocolVersion: 2,
    kernelVersion: kernel,
    btrfsProgsVersion: "6.2",
    maxStreamVersion: 2,
    facts: { os: "Debian GNU/Linux 12 (bookworm)" },
    inventory: null,
  };
}

/** A rollout of php@2 over h1..hn whose hosts are in the given states. */
function rollout(states: HostStep["state"][]): RolloutRecord {
  const record = createRollout(
    {
      id: "r1",
      line: "php",
      version: 2,
      strategy: resolveStrategy({}),
      targets: states.map((_, i) => ({ hostId: `h${i + 1}`, apps: [{ name: "web", version: 1 }] })),
      activeRolloutIds: [],
    },
    T0,
  );
  states.forEach((state, i) => {
    const step = record.hosts[`h${i + 1}`] as HostStep;
    record.hosts[`h${i + 1}`] = { ...step, state, fromVersion: 1 };
  });
  return record;
}

describe("failure clusters of a rollout", () => {
  // h1-h3 on kernel 6.1.0-18 (zone b), h4-h8 on 6.1.0-17 (zone a).
  const known = new Map(
    Array.from({ length: 8 }, (_, i) => {
      const id = `h${i + 1}`;
      return [id, hostRecord(id, i < 3 ? "6.1.0-18" : "6.1.0-17", { zone: i < 3 ? "b" : "a" })];
    }),
  );

  it("says which kernel and label the failed hosts share, from the stored host facts", () => {
    const record = rollout([
      "failed",
      "rolled-back",
      "rollback-failed",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "pending",
    ]);
    expect(rolloutFailureClusters(record, known).map((c) => c.summary)).toEqual([
      "3 of 3 failed hosts have kernel 6.1.0-18; 0 of 4 healthy ones do",
      "3 of 3 failed hosts have label zone=b; 0 of 4 healthy ones do",
    ]);
  });

  it("hosts neither failed nor healthy are left out of both counts", () => {
    const record = rollout([
      "failed",
      "failed",
      "switching",
      "healthy",
      "verifying",
      "pending",
      "staged",
      "fetching",
    ]);
    const [cluster] = rolloutFailureClusters(record, known);
    expect(cluster).toMatchObject({ failedWith: 2, failed: 2, healthyWith: 0, healthy: 1 });
  });

  it("an event only when what is shared changed, and never an empty one", () => {
    const one = rollout([
      "failed",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
    ]);
    const two = rollout([
      "failed",
      "failed",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
    ]);
    const zero = rollout(Array<HostStep["state"]>(8).fill("healthy"));
    // One failed host is no cluster: nothing to say, whatever changed.
    expect(failureClusterChange(zero, one, rolloutFailureClusters, known, T0)).toBeNull();
    // The second failure makes one.
    expect(failureClusterChange(one, two, rolloutFailureClusters, known, T0)?.message).toMatch(
      /^failures in common: 2 of 2 failed hosts have kernel 6\.1\.0-18/,
    );
    // The same outcomes: no event, even with clusters to tell of.
    expect(failureClusterChange(two, structuredClone(two), rolloutFailureClusters, known, T0)).toBeNull();
    const before = rolloutFailureClusters(one, known);
    const after = rolloutFailureClusters(two, known);
    expect(before).toEqual([]);
    expect(failureClusterEvent(before, after, T0)).toEqual({
      at: T0,
      kind: "failure-cluster",
      message:
        "failures in common: 2 of 2 failed hosts have kernel 6.1.0-18; 1 of 6 healthy ones do; 2 of 2 failed hosts have label zone=b; 1 of 6 healthy ones do",
    });
    expect(failureClusterEvent(after, after, T0)).toBeNull();
    expect(failureClusterEvent(after, [], T0)).toBeNull();
  });
});
