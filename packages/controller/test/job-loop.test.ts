import { createControllerLogger } from "@gild/controller";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AgentHub } from "../src/agent-hub.js";
import type { CommandService } from "../src/command-service.js";
import { hurryOverdue, OVERDUE_MS } from "../src/end-of-turn.js";
import { JobLoop, NOT_URGENT_WITHIN_MS, STEP_WAIT_FACTOR } from "../src/job-loop.js";
import type { CommandRecord } from "../src/store/commands-repo.js";

const JOB = "ro_000000000001";
/** The hosts of the job's current wave; news of any other can wait. */
const NOW_HOST = "h_0000000000000001";
const LATER_HOST = "h_0000000000000002";

/** Let the microtasks queued so far run, without letting the event-loop turn end. */
const microtasks = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};
/** Move the clock the loop reads without firing a timer: the time a flood of reports takes. */
const later = (ms: number) => vi.setSystemTime(Date.now() + ms);

describe("the job loop", () => {
  let steps: number;
  /** How long (on the faked clock) each step takes. */
  let stepTakesMs: number;
  let finished: (record: CommandRecord) => void;
  let loop: JobLoop;
  /** The hosts the job waits for to go on (JobLoop's waitingOn); none unless a test says. */
  let waitingOn: ReadonlySet<string> | undefined;
  /** What a step waits for before it ends (a step that awaits, as the executor's may); none unless set. */
  let gate: Promise<void> | undefined;

  beforeEach(() => {
    // The loop's own clocks (setImmediate for a poke, setTimeout for news that can wait), faked: what
    // did not happen yet is asserted at an exact time, not after a sleep.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "Date"] });
    steps = 0;
    stepTakesMs = 0;
    waitingOn = undefined;
    gate = undefined;
    const commands = {
      addListener: (listener: { onFinished?: (record: CommandRecord) => void }) => {
        if (listener.onFinished) finished = listener.onFinished;
      },
    } as unknown as CommandService;
    loop = newLoop("ro_", commands, (_job, hostId) => hostId === NOW_HOST);
    loop.track(JOB, [NOW_HOST, LATER_HOST], true);
  });
  afterEach(() => {
    loop.close();
    vi.useRealTimers();
  });

  /** A loop whose step counts itself; news of its jobs' hosts is urgent as `urgent` says (all, without). */
  function newLoop(
    idPrefix: string,
    commands: CommandService,
    urgent?: (jobId: string, hostId: string) => boolean,
  ): JobLoop {
    return new JobLoop({
      log: createControllerLogger("silent"),
      noun: idPrefix === "ro_" ? "rollout" : "host update",
      now: () => Date.now(),
      step: async () => {
        steps += 1;
        later(stepTakesMs);
        await gate;
        return null;
      },
      idPrefix,
      commands,
      hub: { addListener: () => undefined } as unknown as AgentHub,
      ...(urgent ? { urgent } : {}),
      waitingOn: () => waitingOn,
    });
  }

  const result = (hostId: string) => finished({ id: `c-${hostId}`, hostId, rolloutId: JOB } as CommandRecord);

  it("plans urgent news at once, and news that can wait once within its bound", async () => {
    result(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);

    // A later wave's results and inventories: no step until the bound, then one for all of them.
    result(LATER_HOST);
    loop.pokeHost(LATER_HOST);
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS - 1);
    result(LATER_HOST);
    expect(steps).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await vi.advanceTimersByTimeAsync(1); // the poke's own turn (setImmediate), which the timer queued
    expect(steps).toBe(2);
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS * 4);
    expect(steps).toBe(2);
  });

  it("takes the news that could wait into the next urgent step, and plans it again only for news after that", async () => {
    result(LATER_HOST);
    await vi.advanceTimersByTimeAsync(10);
    expect(steps).toBe(0);
    loop.pokeHost(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    // The urgent step saw the earlier news: the timer it cleared plans nothing.
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS * 2);
    expect(steps).toBe(1);

    result(LATER_HOST);
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS + 1);
    expect(steps).toBe(2);
  });

  it("plans news that could wait when someone waits for the job to settle", async () => {
    result(LATER_HOST);
    await vi.advanceTimersByTimeAsync(10);
    expect(steps).toBe(0);
    const settled = loop.settled(JOB);
    await vi.advanceTimersByTimeAsync(0);
    await settled;
    expect(steps).toBe(1);
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS * 2);
    expect(steps).toBe(1);
  });

  /**
   * Urgent news, then more while the turn does not end: the step it asked for waits until news finds it
   * `ms` late, and runs at once then.
   */
  /** News of NOW_HOST now and OVERDUE_MS later does not hurry the step it asks for. */
  async function notHurriedByNewsOfOne(): Promise<void> {
    const before = steps;
    result(NOW_HOST);
    later(OVERDUE_MS);
    result(NOW_HOST);
    await microtasks();
    expect(steps).toBe(before);
  }

  async function hurriedAfter(ms: number): Promise<void> {
    const before = steps;
    result(NOW_HOST);
    later(ms - 1);
    result(NOW_HOST);
    await microtasks();
    expect(steps).toBe(before);
    later(1);
    result(NOW_HOST);
    await microtasks();
    expect(steps).toBe(before + 1);
  }

  it("runs a step that a flood of reports holds back once a poke finds it OVERDUE_MS late", async () => {
    await hurriedAfter(OVERDUE_MS);
    // The turn's end finds it done.
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
  });

  it("runs a held-back step when any message finds it overdue, not only news of the job", async () => {
    result(NOW_HOST);
    later(OVERDUE_MS);
    // News that can wait does not ask for the step; the hub has every message look for overdue work.
    result(LATER_HOST);
    await microtasks();
    expect(steps).toBe(0);
    hurryOverdue();
    await microtasks();
    expect(steps).toBe(1);
  });

  it("hurries a step no sooner than twice the last step took, so planning leaves the reports most of the loop", async () => {
    stepTakesMs = 300;
    result(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    await hurriedAfter(STEP_WAIT_FACTOR * 300);
  });

  it("hurries a step after twice the median of the last steps, not after one costly step", async () => {
    // Steps of 300 ms, then one of 2,000 (the step that issues a wave's prefetches).
    for (const ms of [300, 300, 300, 2_000]) {
      stepTakesMs = ms;
      result(NOW_HOST);
      await vi.advanceTimersByTimeAsync(0);
    }
    expect(steps).toBe(4);
    await hurriedAfter(STEP_WAIT_FACTOR * 300);
  });

  it("hurries a step after OVERDUE_MS once every host the job waits for has news since its last step began", async () => {
    stepTakesMs = 300;
    result(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    const WAVE_HOST = "h_0000000000000003";
    waitingOn = new Set([NOW_HOST, WAVE_HOST]);
    // News of one of the two: the step waits twice a step's cost, as any other.
    await notHurriedByNewsOfOne();
    expect(steps).toBe(1);
    // And of the other: it may complete the wave, and the step waits no longer.
    result(WAVE_HOST);
    await microtasks();
    expect(steps).toBe(2);
    // That step saw both: news of one of them since waits again.
    await notHurriedByNewsOfOne();
    expect(steps).toBe(2);
    await hurriedAfter(STEP_WAIT_FACTOR * 300 - OVERDUE_MS);
    // Still waited for after that (the step changed nothing): news of both gets the usual hurry, so a
    // host that keeps reporting cannot have the loop plan back to back.
    result(NOW_HOST);
    result(WAVE_HOST);
    later(OVERDUE_MS);
    result(WAVE_HOST);
    await microtasks();
    expect(steps).toBe(3);
    await hurriedAfter(STEP_WAIT_FACTOR * 300 - OVERDUE_MS);
    // A step that changed what the job waits for (a new set): hurried again.
    waitingOn = new Set([WAVE_HOST]);
    result(WAVE_HOST);
    later(OVERDUE_MS);
    // Any later poke finds it overdue (the least wait asked for holds).
    result(NOW_HOST);
    await microtasks();
    expect(steps).toBe(5);
  });

  it("keeps the hurry of news that came while a step ran for the step after it", async () => {
    stepTakesMs = 300;
    result(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    // A step that has not ended yet (it awaits) when the news that may complete the wave comes.
    let open: () => void = () => undefined;
    gate = new Promise<void>((resolve) => (open = resolve));
    result(NOW_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(2);
    const WAVE_HOST = "h_0000000000000003";
    waitingOn = new Set([WAVE_HOST]);
    result(WAVE_HOST);
    gate = undefined;
    open();
    await microtasks();
    expect(steps).toBe(2);
    // The step it asked for is hurried after OVERDUE_MS, not after twice a step's cost.
    later(OVERDUE_MS);
    hurryOverdue();
    await microtasks();
    expect(steps).toBe(3);
  });

  it("plans news that could wait when later news finds its timer late", async () => {
    result(LATER_HOST);
    later(NOT_URGENT_WITHIN_MS - 1);
    result(LATER_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(0);
    later(1);
    result(LATER_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    // That step saw the news: the timer it cleared plans nothing.
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS * 2);
    expect(steps).toBe(1);
  });

  it("treats all news as urgent without an urgency rule, and plans nothing once closed", async () => {
    const plain = newLoop("hu_", { addListener: () => undefined } as unknown as CommandService);
    plain.track("hu_1", [LATER_HOST], true);
    plain.pokeHost(LATER_HOST);
    await vi.advanceTimersByTimeAsync(0);
    expect(steps).toBe(1);
    plain.close();

    result(LATER_HOST);
    loop.close();
    await vi.advanceTimersByTimeAsync(NOT_URGENT_WITHIN_MS * 2);
    expect(steps).toBe(1);
  });
});
