import { silentLogger } from "@gild/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CommandListener } from "../src/command-service.js";
import { JobLoop, LATER_STEP_MS } from "../src/job-loop.js";
import type { CommandRecord } from "../src/store/commands-repo.js";

// The job loop alone, with fake timers: which news plans a job at once and which gathers first.

const JOB = "ro_0000000001";
const NOW_HOST = "h_00000000000000a1";
const LATER_HOST = "h_00000000000000b2";

describe("JobLoop", () => {
  let commandListeners: CommandListener[];
  let steps: number;
  let loop: JobLoop;

  const finished = (hostId: string) => {
    const record = { rolloutId: JOB, hostId } as CommandRecord;
    for (const l of commandListeners) l.onFinished?.(record);
  };

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "Date"] });
    commandListeners = [];
    steps = 0;
    loop = new JobLoop({
      log: silentLogger,
      noun: "rollout",
      now: () => Date.now(),
      step: async () => {
        steps++;
        return null;
      },
      idPrefix: "ro_",
      commands: { addListener: (l) => commandListeners.push(l) },
      hub: { addListener: () => undefined },
      canWait: (_job, hostId) => hostId === LATER_HOST,
    });
    loop.track(JOB, [NOW_HOST, LATER_HOST], true);
  });

  afterEach(() => {
    loop.close();
    vi.useRealTimers();
  });

  it("plans at once on news it cannot wait for, one step for a burst", async () => {
    for (let i = 0; i < 5; i++) finished(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
  });

  it("gathers news that can wait for LATER_STEP_MS into one step", async () => {
    for (let i = 0; i < 20; i++) {
      finished(LATER_HOST);
      loop.pokeHost(LATER_HOST);
      await vi.advanceTimersByTimeAsync(LATER_STEP_MS / 40);
    }
    expect(steps).toBe(0);
    await vi.advanceTimersByTimeAsync(LATER_STEP_MS);
    expect(steps).toBe(1);
    // Nothing more was waiting.
    await vi.advanceTimersByTimeAsync(10 * LATER_STEP_MS);
    expect(steps).toBe(1);
  });

  it("news that cannot wait takes the waiting news along: one step, not two", async () => {
    finished(LATER_HOST);
    await vi.advanceTimersByTimeAsync(LATER_STEP_MS / 5);
    loop.pokeHost(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    await vi.advanceTimersByTimeAsync(10 * LATER_STEP_MS);
    expect(steps).toBe(1);
  });

  it("settled() plans the news that was waiting", async () => {
    finished(LATER_HOST);
    const settled = loop.settled(JOB);
    await vi.advanceTimersByTimeAsync(0);
    await settled;
    expect(steps).toBe(1);
    await vi.advanceTimersByTimeAsync(10 * LATER_STEP_MS);
    expect(steps).toBe(1);
  });
});
