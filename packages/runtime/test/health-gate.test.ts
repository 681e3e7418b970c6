import { HealthMonitor, type HealthState, type ProbeResult, resolveProbe, waitHealthy } from "@gild/runtime";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// The streak logic with scripted probe results (no container needed): a probe function that answers
// from a list, then repeats the last answer.
function scripted(answers: boolean[]) {
  const results: ProbeResult[] = [];
  let i = 0;
  const run = async (): Promise<ProbeResult> => {
    const ok = answers[Math.min(i, answers.length - 1)] as boolean;
    i++;
    const result = { ok, detail: ok ? "fine" : `failure #${i}`, at: Date.now(), durationMs: 0 };
    results.push(result);
    return result;
  };
  return { run, results };
}

const alive = () => ({ running: true });

describe("waitHealthy", () => {
  it("succeeds once the probe held ok for minHealthy, counted from the first ok of the streak", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 10, minHealthyMs: 100 });
    const { run, results } = scripted([false, true]);
    const result = await waitHealthy(probe, {
      deadlineAt: Date.now() + 5_000,
      isAlive: alive,
      runProbe: run,
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.healthySince).toBe(results[1]?.at);
    expect(result.last.at - result.healthySince).toBeGreaterThanOrEqual(100);
  });

  it("restarts the streak after a failed probe: flapping is not progress", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 10, minHealthyMs: 80 });
    const { run, results } = scripted([true, true, true, false, true]);
    const result = await waitHealthy(probe, {
      deadlineAt: Date.now() + 5_000,
      isAlive: alive,
      runProbe: run,
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    // The streak that counts starts after the failure (probe #5), not at probe #1.
    expect(result.healthySince).toBe(results[4]?.at);
    expect(result.healthySince).toBeGreaterThan(results[0]?.at as number);
  });

  it("never passes a probe that flaps faster than minHealthy, and fails at the deadline", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 10, minHealthyMs: 60 });
    let n = 0;
    const run = async (): Promise<ProbeResult> => {
      n++;
      const ok = n % 4 !== 0; // three ok (30 ms), then one failure
      return { ok, detail: ok ? "fine" : "flap", at: Date.now(), durationMs: 0 };
    };
    const t0 = Date.now();
    const result = await waitHealthy(probe, { deadlineAt: t0 + 500, isAlive: alive, runProbe: run });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(490);
    expect(n).toBeGreaterThan(8);
    expect(result.reason).toMatch(/^not healthy/);
  });

  it("keeps the last complete probe result when the deadline cuts a probe short", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 50, timeoutMs: 1_000 });
    let calls = 0;
    const run = async (_p: unknown, timeoutMs: number): Promise<ProbeResult> => {
      calls++;
      const at = Date.now();
      if (calls === 1) return { ok: false, detail: "HTTP 500 from GET /healthz", at, durationMs: 0 };
      await new Promise((resolve) => setTimeout(resolve, timeoutMs));
      return { ok: false, detail: `no answer within ${timeoutMs} ms`, at, durationMs: Date.now() - at };
    };
    const result = await waitHealthy(probe, { deadlineAt: Date.now() + 150, isAlive: alive, runProbe: run });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(calls).toBe(2);
    expect(result.reason).toContain("last probe failed: HTTP 500 from GET /healthz");
    expect(result.reason).toContain("cut off by the deadline");
  });

  it("fails at once when the container exits, with its exit code", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 1_000 });
    let running = true;
    const { run } = scripted([false]);
    setTimeout(() => {
      running = false;
    }, 50);
    const t0 = Date.now();
    const result = await waitHealthy(probe, {
      deadlineAt: t0 + 30_000,
      isAlive: () => ({ running, exitCode: running ? null : 7 }),
      runProbe: run,
      aliveCheckMs: 20,
    });
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(result).toMatchObject({ ok: false, exited: true, exitCode: 7 });
    if (result.ok) return;
    expect(result.reason).toContain("exited with exit code 7");
    expect(result.reason).toContain("last probe failed: failure #1");
  });

  it("rejects when its signal aborts", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 1_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("switch cancelled")), 30);
    await expect(
      waitHealthy(probe, {
        deadlineAt: Date.now() + 30_000,
        isAlive: alive,
        runProbe: scripted([false]).run,
        signal: controller.signal,
      }),
    ).rejects.toThrow("switch cancelled");
  });
});

describe("HealthMonitor", () => {
  // Fake timers: the schedule is checked exactly, and "nothing more happens after stop" is a count of
  // pending timers rather than a wait.
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("probes after the initial delay, then at its interval, reports changes, and stops cleanly", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 20, initialDelayMs: 30 });
    const { run, results } = scripted([false, false, true, true, true, false]);
    const monitor = new HealthMonitor(probe, { runProbe: run });
    const changes: HealthState[] = [];
    monitor.onChange((state) => changes.push(state));
    expect(monitor.state).toMatchObject({ health: "unknown", since: null });
    const t0 = Date.now();
    monitor.start();
    monitor.start(); // idempotent
    await vi.advanceTimersByTimeAsync(29);
    expect(results).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(results.map((r) => r.at - t0)).toEqual([30]);
    await vi.advanceTimersByTimeAsync(100);
    expect(results.map((r) => r.at - t0)).toEqual([30, 50, 70, 90, 110, 130]);
    expect(changes.map((c) => c.health)).toEqual(["unhealthy", "healthy", "unhealthy"]);
    expect(changes.map((c) => (c.since as number) - t0)).toEqual([30, 70, 130]);
    expect(monitor.state).toMatchObject({ health: "unhealthy", detail: "failure #6" });
    monitor.stop();
    expect(monitor.running).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(results).toHaveLength(6);
  });

  it("never runs two probes at once, and drops the result of a probe in flight at stop", async () => {
    const probe = resolveProbe({ kind: "tcp", target: "127.0.0.1:1", intervalMs: 1 });
    let inFlight = 0;
    let maxInFlight = 0;
    let calls = 0;
    const monitor = new HealthMonitor(probe, {
      runProbe: async () => {
        inFlight++;
        calls++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const at = Date.now();
        // Each probe takes 15 ms, far longer than the 1 ms interval.
        await new Promise((resolve) => setTimeout(resolve, 15));
        inFlight--;
        return { ok: calls < 5, detail: `probe ${calls}`, at, durationMs: Date.now() - at };
      },
    });
    monitor.start();
    for (let ms = 0; calls < 5 && ms < 1_000; ms++) await vi.advanceTimersByTimeAsync(1);
    // Probe 5 is in flight now; probes 1-4 ran one after the other.
    expect(calls).toBe(5);
    expect(maxInFlight).toBe(1);
    expect(monitor.state).toMatchObject({ health: "healthy", detail: "probe 4" });
    monitor.stop();
    await vi.advanceTimersByTimeAsync(100);
    // Probe 5 would have said unhealthy; it finished after stop, so it is ignored.
    expect(monitor.state).toMatchObject({ health: "healthy", detail: "probe 4" });
    expect(calls).toBe(5);
    expect(vi.getTimerCount()).toBe(0);
  });
});
