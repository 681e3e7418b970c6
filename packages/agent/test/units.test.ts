import { backoffDelay } from "@gild/agent";
import { describe, expect, it } from "vitest";

describe("reconnect backoff", () => {
  it("is full jitter: uniform in [0, min(cap, base * 2^attempt))", () => {
    expect(backoffDelay(0, 500, 60_000, () => 0.999)).toBe(499);
    expect(backoffDelay(3, 500, 60_000, () => 0.5)).toBe(2000);
    expect(backoffDelay(0, 500, 60_000, () => 0)).toBe(0);
  });

  it("is capped at 60 s however many attempts failed", () => {
    for (const attempt of [7, 8, 20, 1000])
      expect(backoffDelay(attempt, 500, 60_000, () => 0.9999)).toBeLessThan(60_000);
    expect(backoffDelay(1000, 500, 60_000, () => 0.5)).toBe(30_000);
  });
});
