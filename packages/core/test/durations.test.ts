import {
  DURATION_LIMITS,
  durationField,
  type FieldProblem,
  MAX_TIMER_DELAY_MS,
  parseAppSpec,
  parseDuration,
  resolveStrategy,
  setLongTimeout,
} from "@gild/core";
import { afterEach, describe, expect, it, vi } from "vitest";

const DAY = 86_400_000;

describe("durations have upper bounds", () => {
  it("no duration is longer than a year (8.64e27 ms is refused, not accepted)", () => {
    expect(() => parseDuration("99999999999999999999d")).toThrow(
      expect.objectContaining({ code: "GILD_BAD_REQUEST", message: expect.stringContaining("longer than") }),
    );
    expect(() => parseDuration("366d")).toThrow(expect.objectContaining({ code: "GILD_BAD_REQUEST" }));
    expect(parseDuration("365d")).toBe(365 * DAY);
  });

  it("each field has its own bound, reported with its path", () => {
    const problems: FieldProblem[] = [];
    expect(durationField("2h", 5, "health.interval", problems, DURATION_LIMITS.probe)).toBe(5);
    expect(durationField(2 * 3_600_000, 5, "x", problems, DURATION_LIMITS.probe)).toBe(5);
    expect(problems).toEqual([
      { path: "health.interval", message: "must be at most 1h" },
      { path: "x", message: "must be at most 1h" },
    ]);
  });

  it("a strategy lists every duration out of bounds at once", () => {
    expect(() =>
      resolveStrategy({
        canaryBake: "91d",
        bake: "99999999999999999999d",
        healthyDeadline: "8d",
        minHealthy: "2d",
      }),
    ).toThrow(
      expect.objectContaining({
        code: "GILD_INVALID_SPEC",
        details: {
          problems: expect.arrayContaining([
            { path: "canaryBake", message: "must be at most 90d" },
            expect.objectContaining({ path: "bake" }),
            { path: "healthyDeadline", message: "must be at most 7d" },
            { path: "minHealthy", message: "must be at most 1d" },
          ]),
        },
      }),
    );
    // Weeks of bake are fine: the executor waits that long (setLongTimeout).
    expect(resolveStrategy({ canaryBake: "30d" }).canaryBakeMs).toBe(30 * DAY);
  });

  it("an app spec too", () => {
    expect(() =>
      parseAppSpec({
        name: "blog",
        image: "php",
        hosts: ["web-1"],
        cmd: "exec serve",
        stopTimeout: "2h",
        health: { http: "http://127.0.0.1:80/", interval: "2h" },
      }),
    ).toThrow(
      expect.objectContaining({
        details: {
          problems: expect.arrayContaining([
            { path: "stopTimeout", message: "must be at most 1h" },
            { path: "health.interval", message: "must be at most 1h" },
          ]),
        },
      }),
    );
  });
});

describe("setLongTimeout", () => {
  afterEach(() => vi.useRealTimers());

  it("waits a delay beyond Node's 24.8-day timer limit, in steps, and fires once at the end", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const spy = vi.spyOn(globalThis, "setTimeout");
    setLongTimeout(fired, 30 * DAY);
    // Node would clamp a delay over its limit to 1 ms: no step may ask for more.
    for (const call of spy.mock.calls) expect(call[1]).toBeLessThanOrEqual(MAX_TIMER_DELAY_MS);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(30 * DAY - MAX_TIMER_DELAY_MS - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60 * DAY);
    expect(fired).toHaveBeenCalledTimes(1);
    for (const call of spy.mock.calls) expect(call[1]).toBeLessThanOrEqual(MAX_TIMER_DELAY_MS);
  });

  it("can be cancelled, also between its steps", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const timer = setLongTimeout(fired, 40 * DAY);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS + DAY);
    timer.cancel();
    vi.advanceTimersByTime(40 * DAY);
    expect(fired).not.toHaveBeenCalled();
  });
});
