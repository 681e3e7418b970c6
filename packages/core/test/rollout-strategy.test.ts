import {
  type GildError,
  isGildError,
  parseCountOrPercent,
  type RawStrategy,
  resolveStrategy,
} from "@gild/core";
import { describe, expect, it } from "vitest";

function problemsOf(raw: unknown): Array<{ path: string; message: string }> {
  try {
    resolveStrategy(raw as RawStrategy);
  } catch (err) {
    expect(isGildError(err, "GILD_INVALID_SPEC")).toBe(true);
    return (err as GildError).details?.problems as Array<{ path: string; message: string }>;
  }
  throw new Error("expected GILD_INVALID_SPEC");
}

describe("resolveStrategy", () => {
  it("applies the DESIGN.md defaults", () => {
    expect(resolveStrategy({})).toEqual({
      canary: 1,
      canaryHosts: null,
      waves: [{ percent: 25 }, { percent: 100 }],
      maxParallel: null,
      prefetch: true,
      minHealthyMs: 10_000,
      healthyDeadlineMs: 300_000,
      progressDeadlineMs: 600_000,
      bakeMs: 60_000,
      canaryBakeMs: 300_000,
      maxFailures: { count: 0 },
      promote: "manual",
      onFailure: "rollback",
      rollbackMaxParallel: null,
    });
  });

  it("returns a frozen strategy", () => {
    const s = resolveStrategy({ waves: ["10%"] });
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.waves)).toBe(true);
    expect(Object.isFrozen(s.waves[0])).toBe(true);
  });

  it.each<[string, RawStrategy, Partial<ReturnType<typeof resolveStrategy>>]>([
    ["canary count", { canary: 3 }, { canary: 3, canaryHosts: null }],
    ["no canary", { canary: 0 }, { canary: 0, canaryHosts: null }],
    ["canary count as digits", { canary: "2" }, { canary: 2, canaryHosts: null }],
    ["named canaries", { canary: ["web1", "web2"] }, { canary: 2, canaryHosts: ["web1", "web2"] }],
    ["canaries as a comma list", { canary: "web1, web2" }, { canary: 2, canaryHosts: ["web1", "web2"] }],
    [
      "waves: percents, counts, digits",
      { waves: ["10%", 3, "5", "12.5%"] },
      { waves: [{ percent: 10 }, { count: 3 }, { count: 5 }, { percent: 12.5 }] },
    ],
    [
      "durations as text",
      { minHealthy: "30s", healthyDeadline: "2m", bake: "1h30m" },
      { minHealthyMs: 30_000, healthyDeadlineMs: 120_000, bakeMs: 5_400_000 },
    ],
    [
      "durations as milliseconds",
      { progressDeadline: 90_000, canaryBake: 0 },
      { progressDeadlineMs: 90_000, canaryBakeMs: 0 },
    ],
    ["maxFailures as a count", { maxFailures: "2" }, { maxFailures: { count: 2 } }],
    ["maxFailures as a percent", { maxFailures: "10%" }, { maxFailures: { percent: 10 } }],
    ["maxFailures as a number", { maxFailures: 1 }, { maxFailures: { count: 1 } }],
    ["parallelism", { maxParallel: 2, rollbackMaxParallel: "4" }, { maxParallel: 2, rollbackMaxParallel: 4 }],
    [
      "enums",
      { promote: "auto", onFailure: "pause", prefetch: false },
      { promote: "auto", onFailure: "pause", prefetch: false },
    ],
  ])("%s", (_name, raw, expected) => {
    expect(resolveStrategy(raw)).toMatchObject(expected);
  });

  it("lists every problem at once, each with its path", () => {
    const problems = problemsOf({
      canary: -1,
      waves: ["25%", "0%", "abc", 0],
      maxParallel: 0,
      prefetch: "yes",
      minHealthy: "ten seconds",
      healthyDeadline: -5,
      maxFailures: "150%",
      promote: "later",
      onFailure: "explode",
      rollbackMaxParallel: 1.5,
      maxParalel: 3,
    });
    expect(problems.map((p) => p.path).sort()).toEqual(
      [
        "canary",
        "waves[1]",
        "waves[2]",
        "waves[3]",
        "maxParallel",
        "prefetch",
        "minHealthy",
        "healthyDeadline",
        "maxFailures",
        "promote",
        "onFailure",
        "rollbackMaxParallel",
        "maxParalel",
      ].sort(),
    );
    for (const p of problems) expect(p.message.length).toBeGreaterThan(0);
  });

  it.each<[string, RawStrategy, string[]]>([
    ["empty waves", { waves: [] }, ["waves"]],
    ["named canary twice", { canary: ["a", "a"] }, ["canary[1]"]],
    ["empty canary list", { canary: [] }, ["canary"]],
    ["minHealthy longer than the healthy deadline", { minHealthy: "10m" }, ["minHealthy", "minHealthy"]],
    ["healthy deadline shorter than minHealthy", { healthyDeadline: "5s" }, ["healthyDeadline"]],
    ["progress deadline shorter than minHealthy", { progressDeadline: "5s" }, ["progressDeadline"]],
    ["zero healthy deadline", { healthyDeadline: 0 }, ["healthyDeadline"]],
  ])("rejects %s", (_name, raw, paths) => {
    expect(problemsOf(raw).map((p) => p.path)).toEqual(paths);
  });

  it("rejects a strategy that is not an object", () => {
    expect(problemsOf("fast").map((p) => p.path)).toEqual([""]);
  });
});

describe("parseCountOrPercent", () => {
  it.each<[string | number, ReturnType<typeof parseCountOrPercent>]>([
    [0, { count: 0 }],
    [3, { count: 3 }],
    ["3", { count: 3 }],
    [" 7 ", { count: 7 }],
    ["25%", { percent: 25 }],
    ["12.5%", { percent: 12.5 }],
    ["100%", { percent: 100 }],
    ["0%", { percent: 0 }],
  ])("%j", (input, expected) => {
    expect(parseCountOrPercent(input)).toEqual(expected);
  });

  it.each<string | number>(["", "abc", "-1", "101%", "1.5", 1.5, -2, "%", "5 hosts"])(
    "rejects %j",
    (input) => {
      expect(() => parseCountOrPercent(input, "waves[0]")).toThrow(/invalid waves\[0\]/);
    },
  );
});
