import { type ClusterHost, clusterFailures, MAX_FAILURE_CLUSTERS } from "@gild/core";
import { describe, expect, it } from "vitest";

/** n hosts named prefix-1..n with one outcome and the same attributes. */
function hosts(
  prefix: string,
  n: number,
  outcome: ClusterHost["outcome"],
  attributes: Record<string, string>,
): ClusterHost[] {
  return Array.from({ length: n }, (_, i) => ({ hostId: `${prefix}-${i + 1}`, outcome, attributes }));
}

const common = { agent: "0.4.0", from: "php@1" };

describe("clusterFailures", () => {
  it.each<[string, ClusterHost[], string[]]>([
    [
      "the issue's example: every failed host has the kernel no healthy one has",
      [
        ...hosts("bad", 3, "failed", { ...common, kernel: "6.1.0-18" }),
        ...hosts("good", 12, "healthy", { ...common, kernel: "6.1.0-17" }),
      ],
      ["3 of 3 failed hosts have kernel 6.1.0-18; 0 of 12 healthy ones do"],
    ],
    [
      "one failed host says nothing",
      [...hosts("bad", 1, "failed", { kernel: "x" }), ...hosts("good", 4, "healthy", { kernel: "y" })],
      [],
    ],
    [
      "without a healthy host there is nothing to contrast",
      hosts("bad", 3, "failed", { kernel: "x", agent: "1" }),
      [],
    ],
    [
      "what everyone shares is no cluster",
      [...hosts("bad", 2, "failed", common), ...hosts("good", 5, "healthy", common)],
      [],
    ],
    [
      "a label and the version a host came from, the widest gap first",
      [
        { hostId: "a", outcome: "failed", attributes: { ...common, "label:zone": "b", from: "php@3" } },
        { hostId: "b", outcome: "failed", attributes: { ...common, "label:zone": "b", from: "php@3" } },
        { hostId: "c", outcome: "failed", attributes: { ...common, "label:zone": "b" } },
        { hostId: "d", outcome: "healthy", attributes: { ...common, "label:zone": "a" } },
        { hostId: "e", outcome: "healthy", attributes: { ...common, "label:zone": "a" } },
        { hostId: "f", outcome: "healthy", attributes: { ...common, "label:zone": "a", from: "php@3" } },
        { hostId: "g", outcome: "healthy", attributes: { ...common, "label:zone": "a" } },
      ],
      [
        "3 of 3 failed hosts have label zone=b; 0 of 4 healthy ones do",
        "2 of 3 failed hosts came from php@3; 1 of 4 healthy ones did",
      ],
    ],
    [
      "a value held by under half of the failed hosts is left out",
      [
        { hostId: "a", outcome: "failed", attributes: { kernel: "k1" } },
        { hostId: "b", outcome: "failed", attributes: { kernel: "k1" } },
        { hostId: "c", outcome: "failed", attributes: { kernel: "k2" } },
        { hostId: "d", outcome: "failed", attributes: { kernel: "k3" } },
        { hostId: "e", outcome: "failed", attributes: { kernel: "k4" } },
        { hostId: "f", outcome: "healthy", attributes: { kernel: "k5" } },
      ],
      [],
    ],
    [
      "healthy hosts that share it as often as half the failed share rule it out",
      [
        ...hosts("bad", 4, "failed", { kernel: "k1" }),
        ...hosts("good-k1", 2, "healthy", { kernel: "k1" }),
        ...hosts("good-k2", 2, "healthy", { kernel: "k2" }),
      ],
      [],
    ],
    [
      "empty values are no attribute",
      [...hosts("bad", 2, "failed", { kernel: "" }), ...hosts("good", 2, "healthy", { kernel: "k" })],
      [],
    ],
  ])("%s", (_name, input, summaries) => {
    expect(clusterFailures(input).map((c) => c.summary)).toEqual(summaries);
  });

  it("names the failed hosts of a cluster, sorted, with its counts", () => {
    const input = [
      { hostId: "h3", outcome: "failed" as const, attributes: { kernel: "k1" } },
      { hostId: "h1", outcome: "failed" as const, attributes: { kernel: "k1" } },
      { hostId: "h2", outcome: "healthy" as const, attributes: { kernel: "k2" } },
    ];
    expect(clusterFailures(input)).toEqual([
      {
        attribute: "kernel",
        value: "k1",
        failedWith: 2,
        failed: 2,
        healthyWith: 0,
        healthy: 1,
        hostIds: ["h1", "h3"],
        summary: "2 of 2 failed hosts have kernel k1; 0 of 1 healthy ones do",
      },
    ]);
  });

  it(`keeps at most ${MAX_FAILURE_CLUSTERS}, whatever the input order`, () => {
    const attributes = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`label:k${i}`, "bad"]));
    const input = [
      ...hosts("bad", 3, "failed", attributes),
      ...hosts("good", 3, "healthy", { "label:k0": "good" }),
    ];
    const forward = clusterFailures(input);
    expect(forward).toHaveLength(MAX_FAILURE_CLUSTERS);
    expect(clusterFailures([...input].reverse())).toEqual(forward);
  });
});
