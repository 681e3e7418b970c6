import { createHash } from "node:crypto";
import {
  type CreateRolloutInput,
  createRollout,
  type GildError,
  isGildError,
  orderByHostHash,
  type RawStrategy,
  resolveStrategy,
  splitIntoWaves,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import { MIN, T0, targets } from "./rollout-fixtures.js";

function input(patch: Partial<CreateRolloutInput> = {}, raw: RawStrategy = {}): CreateRolloutInput {
  return {
    id: "r1",
    line: "php",
    version: 2,
    strategy: resolveStrategy(raw),
    targets: targets(5),
    activeRolloutIds: [],
    ...patch,
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as GildError).code;
  }
  return "no error";
}

const sha = (id: string) => createHash("sha256").update(id).digest("hex");

describe("createRollout", () => {
  it("starts running, deploying wave 0, with the progress deadline armed", () => {
    const r = createRollout(input(), T0);
    expect(r).toMatchObject({
      id: "r1",
      line: "php",
      version: 2,
      state: "running",
      phase: "deploying",
      currentWave: 0,
      hasCanary: true,
      progressDeadlineAt: T0 + 10 * MIN,
      bakeUntil: null,
      pausedAt: null,
      reason: null,
      rollbackOutcome: null,
      createdAt: T0,
      updatedAt: T0,
      finishedAt: null,
    });
    for (const [i, wave] of r.waves.entries()) {
      for (const id of wave) {
        expect(r.hosts[id]).toEqual({
          hostId: id,
          wave: i,
          state: "pending",
          fetchAttempts: 0,
          deadlineAt: null,
          reason: null,
          fromVersion: 1,
          switchedAt: null,
          healthyAt: null,
          rollbackPending: false,
        });
      }
    }
  });

  it.each<[string, Partial<CreateRolloutInput>, string]>([
    ["another rollout is active on the line", { activeRolloutIds: ["r0"] }, "GILD_ROLLOUT_ACTIVE"],
    ["no targets", { targets: [] }, "GILD_ROLLOUT_NO_HOSTS"],
    ["every host already runs the version", { targets: targets(3, 2) }, "GILD_ROLLOUT_NOOP"],
  ])("refuses when %s", (_name, patch, code) => {
    expect(codeOf(() => createRollout(input(patch), T0))).toBe(code);
  });

  it("checks the line is free before anything else", () => {
    expect(codeOf(() => createRollout(input({ activeRolloutIds: ["r0"], targets: [] }), T0))).toBe(
      "GILD_ROLLOUT_ACTIVE",
    );
  });

  it("says the version already runs everywhere", () => {
    expect(() => createRollout(input({ targets: targets(2, 2) }), T0)).toThrow(/already running everywhere/);
  });

  it("drops up-to-date hosts and records the lowest version a host ran", () => {
    const r = createRollout(
      input({
        targets: [
          { hostId: "a", apps: [{ name: "web", version: 2 }] },
          {
            hostId: "b",
            apps: [
              { name: "web", version: 2 },
              { name: "api", version: 1 },
            ],
          },
          { hostId: "c", apps: [{ name: "web", version: 3 }] },
        ],
      }),
      T0,
    );
    expect(Object.keys(r.hosts).sort()).toEqual(["b", "c"]);
    expect(r.hosts.b?.fromVersion).toBe(1);
    expect(r.hosts.c?.fromVersion).toBe(3);
  });

  it("chooses the canary by sha256 of the host id, whatever the input order", () => {
    const hosts = targets(8);
    const expected = [...hosts].map((h) => h.hostId).sort((a, b) => (sha(a) < sha(b) ? -1 : 1))[0];
    const forward = createRollout(input({ targets: hosts }), T0);
    const backward = createRollout(input({ targets: [...hosts].reverse() }), T0);
    expect(forward.waves[0]).toEqual([expected]);
    expect(backward.waves).toEqual(forward.waves);
    expect(orderByHostHash(hosts.map((h) => h.hostId))[0]).toBe(expected);
  });

  it("honours named canaries, by id or by name, in the order named", () => {
    const hosts = [
      { hostId: "id-1", hostName: "web1", apps: [{ name: "web", version: 1 }] },
      { hostId: "id-2", hostName: "web2", apps: [{ name: "web", version: 1 }] },
      { hostId: "id-3", hostName: "web3", apps: [{ name: "web", version: 1 }] },
    ];
    const r = createRollout(input({ targets: hosts }, { canary: ["web3", "id-1"] }), T0);
    expect(r.waves[0]).toEqual(["id-3", "id-1"]);
    expect(r.waves.slice(1).flat()).toEqual(["id-2"]);
  });

  it("rejects named canaries that are not targets, or already run the version, listing each", () => {
    const hosts = [...targets(2), { hostId: "h9", apps: [{ name: "web", version: 2 }] }];
    let err: unknown;
    try {
      createRollout(input({ targets: hosts }, { canary: ["nope", "h9", "h1"] }), T0);
    } catch (e) {
      err = e;
    }
    expect(isGildError(err, "GILD_INVALID_SPEC")).toBe(true);
    expect((err as GildError).details?.problems).toEqual([
      { path: "canary[0]", message: expect.stringContaining("not among") },
      { path: "canary[1]", message: expect.stringContaining("already runs php@2") },
    ]);
  });

  it("has no canary wave with canary 0", () => {
    const r = createRollout(input({ targets: targets(4) }, { canary: 0, waves: ["50%"] }), T0);
    expect(r.hasCanary).toBe(false);
    expect(r.waves.map((w) => w.length)).toEqual([2, 2]);
  });

  it("makes the whole rollout the canary when there are no more hosts than canaries", () => {
    const r = createRollout(input({ targets: targets(2) }, { canary: 3 }), T0);
    expect(r.hasCanary).toBe(true);
    expect(r.waves.map((w) => w.length)).toEqual([2]);
  });

  it.each<[string, number, RawStrategy, number[]]>([
    ["defaults: canary, 25%, then the rest", 9, {}, [1, 2, 6]],
    ["10% of 3 hosts is one host at a time", 4, { waves: ["10%"] }, [1, 1, 1, 1]],
    ["percents round up", 11, { waves: ["15%", "100%"] }, [1, 2, 8]],
    ["counts, the last repeating", 10, { waves: [1, 3] }, [1, 1, 3, 3, 2]],
    ["a batch never exceeds what is left", 4, { waves: [10] }, [1, 3]],
    ["percent of the non-canary hosts", 21, { waves: ["50%"] }, [1, 10, 10]],
    ["several canaries", 6, { canary: 2, waves: ["100%"] }, [2, 4]],
  ])("waves: %s", (_name, hosts, raw, sizes) => {
    const r = createRollout(input({ targets: targets(hosts) }, raw), T0);
    expect(r.waves.map((w) => w.length)).toEqual(sizes);
    expect(r.waves.flat().sort()).toEqual(
      targets(hosts)
        .map((t) => t.hostId)
        .sort(),
    );
  });

  it("orders the non-canary hosts by the same hash", () => {
    const r = createRollout(input({ targets: targets(9) }), T0);
    expect(r.waves.flat()).toEqual(orderByHostHash(targets(9).map((t) => t.hostId)));
  });

  it("splitIntoWaves takes percents of all the hosts it splits", () => {
    expect(splitIntoWaves(["a", "b", "c", "d", "e"], [{ percent: 40 }, { count: 1 }])).toEqual([
      ["a", "b"],
      ["c"],
      ["d"],
      ["e"],
    ]);
  });
});
