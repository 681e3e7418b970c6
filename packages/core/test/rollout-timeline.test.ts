import { DEFAULT_TRANSFER_BYTES_PER_SECOND, estimateTimeline, type RawStrategy } from "@gild/core";
import { describe, expect, it } from "vitest";
import { newRollout } from "./rollout-fixtures.js";

const MB = 1_000_000;

/** 9 hosts (canary, 2, 6), 100 MB each, 10 MB/s, switch 15 s, minHealthy 10 s. */
function estimate(raw: RawStrategy = {}) {
  const r = newRollout(9, raw);
  const bytesByHost = Object.fromEntries(Object.keys(r.hosts).map((id) => [id, 100 * MB]));
  return estimateTimeline(r, { bytesByHost, bytesPerSecond: 10 * MB, switchSeconds: 15 });
}

const row = (t: ReturnType<typeof estimate>) =>
  t.waves.map((w) => [
    w.hosts.length,
    w.transferSeconds,
    w.verifySeconds,
    w.bakeSeconds,
    w.startsAtSecond,
    w.endsAtSecond,
  ]);

describe("estimateTimeline", () => {
  it("defaults: the canary waits for promotion (not counted), prefetch hides later downloads, no bake after the last", () => {
    const t = estimate();
    expect(t.waves.map((w) => [w.canary, w.awaitsPromotion])).toEqual([
      [true, true],
      [false, false],
      [false, false],
    ]);
    // hosts, transfer, verify, bake, start, end
    expect(row(t)).toEqual([
      [1, 10, 25, 0, 0, 35],
      [2, 0, 25, 60, 35, 120],
      [6, 0, 25, 0, 120, 145],
    ]);
    expect(t.totalSeconds).toBe(145);
    expect(t.waves[2]?.bytes).toBe(600 * MB);
  });

  it("without prefetch each wave downloads when it starts", () => {
    expect(row(estimate({ prefetch: false }))).toEqual([
      [1, 10, 25, 0, 0, 35],
      [2, 20, 25, 60, 35, 140],
      [6, 60, 25, 0, 140, 225],
    ]);
  });

  it("a prefetch that is not done when its wave starts is waited for", () => {
    // Wave 2's 60 s download starts with wave 1 (at 35 s); wave 1 takes 25 s with no bake, so wave 2
    // waits 35 s for the rest.
    expect(row(estimate({ bake: 0 }))).toEqual([
      [1, 10, 25, 0, 0, 35],
      [2, 0, 25, 0, 35, 60],
      [6, 35, 25, 0, 60, 120],
    ]);
  });

  it("maxParallel switches in batches; promote auto bakes the canary for canaryBake", () => {
    expect(row(estimate({ maxParallel: 4, promote: "auto", canaryBake: "2m" }))).toEqual([
      [1, 10, 25, 120, 0, 155],
      [2, 0, 25, 60, 155, 240],
      [6, 0, 50, 0, 240, 290],
    ]);
  });

  it("uses a default rate when none was measured, and 0 bytes for unknown hosts unless told", () => {
    const r = newRollout(2, { canary: 0, waves: ["100%"] });
    const [x] = r.waves[0] as [string];
    const t = estimateTimeline(r, {
      bytesByHost: { [x]: 10 * DEFAULT_TRANSFER_BYTES_PER_SECOND },
      bytesPerSecond: null,
    });
    expect(t.waves[0]?.transferSeconds).toBe(10);
    const withDefault = estimateTimeline(r, {
      bytesByHost: {},
      defaultHostBytes: DEFAULT_TRANSFER_BYTES_PER_SECOND,
    });
    expect(withDefault.waves[0]?.transferSeconds).toBe(2);
  });
});
