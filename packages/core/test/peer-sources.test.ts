import { type PeerPlanInput, type PeerSourceRef, PeerTree, planPeerSources } from "@gild/core";
import { describe, expect, it } from "vitest";
import { rng } from "./seeded-random.js";

/** A plan as short text: host -> "p:h1,p:h0,c". */
function text(plan: Map<string, PeerSourceRef[]>): Record<string, string> {
  return Object.fromEntries(
    [...plan].map(([host, sources]) => [
      host,
      sources.map((s) => (s.kind === "controller" ? "c" : `p:${s.hostId}`)).join(","),
    ]),
  );
}

const hosts = (n: number, over: { canServe?: boolean; canFetch?: boolean } = {}) =>
  Array.from({ length: n }, (_, i) => ({ hostId: `h${i}`, canServe: true, canFetch: true, ...over }));

describe("planPeerSources", () => {
  it.each<[string, PeerPlanInput, Record<string, string>]>([
    [
      "one host: the controller",
      { holders: [], assigned: [], newcomers: hosts(1), maxDegree: 2 },
      { h0: "c" },
    ],
    [
      "a wave of 7 with nobody holding it: one from the controller, a binary tree below",
      { holders: [], assigned: [], newcomers: hosts(7), maxDegree: 2 },
      {
        h0: "c",
        h1: "p:h0,c",
        h2: "p:h0,c",
        h3: "p:h1,p:h0,c",
        h4: "p:h1,p:h0,c",
        h5: "p:h2,c",
        h6: "p:h2,c",
      },
    ],
    [
      "a holder takes the first hosts; the controller feeds nobody",
      {
        holders: [{ hostId: "old", canServe: true }],
        assigned: [],
        newcomers: hosts(3),
        maxDegree: 2,
      },
      { h0: "p:old,c", h1: "p:old,c", h2: "p:h0,p:old,c" },
    ],
    [
      "hosts that cannot serve are leaves; with no server at all, everyone from the controller",
      { holders: [], assigned: [], newcomers: hosts(3, { canServe: false }), maxDegree: 2 },
      { h0: "c", h1: "c", h2: "c" },
    ],
    [
      "a protocol-1 host (cannot fetch from peers) gets the controller and serves nobody",
      {
        holders: [],
        assigned: [],
        newcomers: [
          { hostId: "v1", canServe: false, canFetch: false },
          { hostId: "a", canServe: true, canFetch: true },
          { hostId: "b", canServe: true, canFetch: true },
        ],
        maxDegree: 2,
      },
      { v1: "c", a: "c", b: "p:a,c" },
    ],
    [
      "degree 1 is a chain",
      { holders: [], assigned: [], newcomers: hosts(4), maxDegree: 1 },
      { h0: "c", h1: "p:h0,c", h2: "p:h1,p:h0,c", h3: "p:h2,p:h1,c" },
    ],
    [
      "hosts assigned earlier keep their place and their load counts",
      {
        holders: [],
        assigned: [
          { hostId: "h0", canServe: true, sources: [{ kind: "controller" }] },
          { hostId: "h1", canServe: true, sources: [{ kind: "peer", hostId: "h0" }, { kind: "controller" }] },
          { hostId: "h2", canServe: true, sources: [{ kind: "peer", hostId: "h0" }, { kind: "controller" }] },
        ],
        newcomers: [{ hostId: "h3", canServe: true, canFetch: true }],
        maxDegree: 2,
      },
      { h3: "p:h1,p:h0,c" },
    ],
  ])("%s", (_name, input, expected) => {
    expect(text(planPeerSources(input))).toEqual(expected);
  });

  it("refuses a host planned twice and a degree below 1", () => {
    expect(() =>
      planPeerSources({ holders: [], assigned: [], newcomers: [...hosts(1), ...hosts(1)], maxDegree: 2 }),
    ).toThrow(/planned twice/);
    expect(() => planPeerSources({ holders: [], assigned: [], newcomers: hosts(1), maxDegree: 0 })).toThrow();
  });

  // Properties over seeded random waves: bounded degree, depth, the controller feeds one host of a wave
  // that nobody holds, every list ends with the controller, and planning in pieces gives the same plan.
  it.each([1, 2, 3, 4, 5, 6, 7, 8])("properties hold (seed %i)", (seed) => {
    const next = rng(seed);
    const n = 1 + Math.floor(next() * 200);
    const degree = 1 + Math.floor(next() * 4);
    const newcomers = Array.from({ length: n }, (_, i) => ({
      hostId: `h${i}`,
      canServe: next() < 0.8,
      canFetch: next() < 0.95,
    }));
    const plan = planPeerSources({ holders: [], assigned: [], newcomers, maxDegree: degree });
    const primary = new Map<string, number>();
    const alternate = new Map<string, number>();
    for (const [host, sources] of plan) {
      expect(sources.at(-1)).toEqual({ kind: "controller" });
      expect(sources.length).toBeLessThanOrEqual(3);
      const peers = sources.filter((s) => s.kind === "peer").map((s) => s.hostId);
      expect(new Set(peers).size).toBe(peers.length);
      expect(peers).not.toContain(host);
      if (peers[0] !== undefined) primary.set(peers[0], (primary.get(peers[0]) ?? 0) + 1);
      if (peers[1] !== undefined) alternate.set(peers[1], (alternate.get(peers[1]) ?? 0) + 1);
      for (const p of peers) expect(newcomers.find((h) => h.hostId === p)?.canServe).toBe(true);
    }
    for (const load of [...primary.values(), ...alternate.values()]) expect(load).toBeLessThanOrEqual(degree);
    // A fetching host comes from the controller only when every server before it was full.
    for (const [i, h] of newcomers.entries()) {
      if (!h.canFetch || plan.get(h.hostId)?.[0]?.kind !== "controller") continue;
      for (const s of newcomers.slice(0, i).filter((x) => x.canServe && x.canFetch))
        expect(primary.get(s.hostId)).toBe(degree);
    }
    // When every host serves, the controller feeds only the first.
    const all = planPeerSources({ holders: [], assigned: [], newcomers: hosts(n), maxDegree: degree });
    expect([...all.values()].filter((s) => s[0]?.kind === "controller")).toHaveLength(1);
    // Planned in two pieces, the second knowing the first: the same plan.
    const cut = Math.floor(next() * n);
    const first = planPeerSources({
      holders: [],
      assigned: [],
      newcomers: newcomers.slice(0, cut),
      maxDegree: degree,
    });
    const assigned = newcomers.slice(0, cut).map((h) => ({
      hostId: h.hostId,
      canServe: h.canServe && h.canFetch,
      sources: first.get(h.hostId) ?? [],
    }));
    const rest = planPeerSources({
      holders: [],
      assigned,
      newcomers: newcomers.slice(cut),
      maxDegree: degree,
    });
    expect(text(new Map([...first, ...rest]))).toEqual(text(plan));
  });

  it("depth of a full wave is log2 of its size with degree 2", () => {
    const plan = planPeerSources({ holders: [], assigned: [], newcomers: hosts(255), maxDegree: 2 });
    const depth = (host: string): number => {
      const first = plan.get(host)?.[0];
      return first?.kind === "peer" ? 1 + depth(first.hostId) : 0;
    };
    expect(Math.max(...[...plan.keys()].map(depth))).toBe(7);
  });
});

describe("PeerTree", () => {
  const short = (sources: PeerSourceRef[]) =>
    sources.map((s) => (s.kind === "controller" ? "c" : `p:${s.hostId}`)).join(",");
  const newcomer = (hostId: string) => ({ hostId, canServe: true, canFetch: true });

  it("a host that finished frees its parent's slot and feeds the next hosts first", () => {
    const tree = new PeerTree(1, () => true);
    expect(short(tree.add(newcomer("a")))).toBe("c");
    expect(short(tree.add(newcomer("b")))).toBe("p:a,c");
    // a is full (degree 1): c goes below b.
    expect(short(tree.add(newcomer("c")))).toBe("p:b,p:a,c");
    tree.done("b");
    // b holds every chunk now and no longer loads a: a has room again; b, a holder, is the alternate.
    expect(short(tree.add(newcomer("d")))).toBe("p:a,p:b,c");
    tree.done("c");
    // The holders come first: b (c no longer loads it), with c as the alternate (b's is taken).
    expect(short(tree.add(newcomer("e")))).toBe("p:b,p:c,c");
  });

  it("skips a host that cannot serve now, and names it again once it can", () => {
    const down = new Set<string>();
    const tree = new PeerTree(2, (id) => !down.has(id));
    tree.add(newcomer("a"));
    down.add("a");
    expect(short(tree.add(newcomer("b")))).toBe("c");
    down.delete("a");
    expect(short(tree.add(newcomer("c")))).toBe("p:a,c");
  });

  it("a host that left frees its parent's slot; one that pulls again is planned anew", () => {
    const tree = new PeerTree(1, () => true);
    tree.add(newcomer("a"));
    expect(short(tree.add(newcomer("b")))).toBe("p:a,c");
    tree.remove("b");
    expect(short(tree.add(newcomer("b")))).toBe("p:a,c");
    expect(() => tree.add(newcomer("b"))).toThrow(/planned twice/);
  });

  it("plans a wave of 10,000 hosts looking at each server a bounded number of times", () => {
    let asked = 0;
    const tree = new PeerTree(2, () => {
      asked++;
      return true;
    });
    for (let i = 0; i < 10_000; i++) tree.add(newcomer(`h${i}`));
    // Planning each host against the whole wave would ask about 50 million times.
    expect(asked).toBeLessThan(4 * 10_000);
  });
});
