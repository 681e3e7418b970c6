import { BufferPool } from "@gild/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";

describe("BufferPool", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hands a buffer given back out again, for the same size only", () => {
    const pool = new BufferPool(1 << 20);
    const a = pool.take(4096);
    expect(a.length).toBe(4096);
    expect(pool.bytes).toBe(0);
    pool.give(a);
    expect(pool.bytes).toBe(4096);
    const other = pool.take(8192);
    expect(other).not.toBe(a);
    expect(other.length).toBe(8192);
    expect(pool.take(4096)).toBe(a);
    expect(pool.bytes).toBe(0);
    expect(pool.take(4096)).not.toBe(a);
  });

  it("keeps no more than its limit, a buffer once, and no view into a larger one", () => {
    const pool = new BufferPool(8192);
    const [a, b, c] = [pool.take(4096), pool.take(4096), pool.take(4096)];
    pool.give(a);
    pool.give(a);
    expect(pool.bytes).toBe(4096);
    pool.give(b);
    pool.give(c);
    expect(pool.bytes).toBe(8192);
    const taken = new Set([pool.take(4096), pool.take(4096)]);
    expect(taken).toEqual(new Set([a, b]));
    const whole = Buffer.allocUnsafeSlow(8192);
    pool.give(whole.subarray(0, 4096));
    pool.give(whole.subarray(4096));
    expect(pool.bytes).toBe(0);
  });

  it("lets its buffers go once no transfer used it for its idle time", () => {
    vi.useFakeTimers();
    const pool = new BufferPool(1 << 20, 1000);
    const a = pool.take(1024);
    pool.give(a);
    vi.advanceTimersByTime(900);
    // Used again: the idle time starts over.
    expect(pool.take(1024)).toBe(a);
    pool.give(a);
    vi.advanceTimersByTime(900);
    expect(pool.bytes).toBe(1024);
    vi.advanceTimersByTime(200);
    expect(pool.bytes).toBe(0);
    expect(pool.take(1024)).not.toBe(a);
  });
});
