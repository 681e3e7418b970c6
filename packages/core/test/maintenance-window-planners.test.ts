// Maintenance windows in the two wave planners: a host outside its window is not switched (rollouts) or
// not started (host updates), the next wake is the window's opening, and it proceeds once open.
import {
  createHostUpdate,
  estimateTimeline,
  type HostUpdateFleetObservation,
  type HostUpdateRecord,
  type HostUpdateStep,
  parseMaintenanceWindows,
  planHostUpdate,
  resolveHostUpdateStrategy,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import {
  fetched,
  fleetObs,
  frozen,
  kinds,
  MIN,
  newRollout,
  ok,
  onTarget,
  plan,
  T0,
  withHosts,
} from "./rollout-fixtures.js";

// T0 is 2023-11-14T22:13:20Z (a Tuesday): the window below is closed then and opens at 03:00 the next day.
const WINDOW = parseMaintenanceWindows("daily 03:00-04:00 UTC");
const OPENS = Date.parse("2023-11-15T03:00:00Z");
const ALWAYS = parseMaintenanceWindows("daily 00:00-24:00 UTC");

describe("planRollout with maintenance windows (canary h1, then h2, h3)", () => {
  const r3 = newRollout(3, { canary: ["h1"], waves: ["100%"] });
  const fetching = { state: "fetching" as const, fetchAttempts: 1 };
  const all = withHosts(r3, { h1: fetching, h2: fetching, h3: fetching });

  it("fetches go on outside the window; the staged host is not switched and carries why", () => {
    const res = plan(all, fleetObs(all, { h1: { fetch: fetched(1), windows: WINDOW } }), T0);
    expect(kinds(res.commands)).toEqual([]);
    expect(res.rollout.hosts.h1).toMatchObject({ state: "staged", switchedAt: null });
    expect(res.rollout.hosts.h1?.reason).toBe(
      "waiting for its maintenance window (opens 2023-11-15T03:00:00.000Z)",
    );
    expect(res.events.filter((e) => e.message.includes("waiting for its maintenance window"))).toHaveLength(
      1,
    );
    // The window's opening is the next wake, and the progress deadline runs from it: waiting is no failure.
    expect(res.nextWakeAt).toBe(OPENS);
    expect(res.rollout.progressDeadlineAt).toBe(OPENS + 10 * MIN);
    // Re-planning changes nothing and says nothing again.
    const again = plan(res.rollout, fleetObs(all, { h1: { fetch: fetched(1), windows: WINDOW } }), T0 + MIN);
    expect(again.rollout).toEqual(res.rollout);
    expect(again.commands).toEqual([]);
    expect(again.events).toEqual([]);
    expect(again.nextWakeAt).toBe(OPENS);
  });

  it("a fresh rollout fetches a host whose window is closed, and a host inside its window switches", () => {
    const res = plan(r3, fleetObs(r3, { h1: { hasImage: true, windows: ALWAYS } }), T0);
    expect(kinds(res.commands)).toEqual(["fetch:h2", "fetch:h3", "switch:h1"]);
    const closed = plan(r3, fleetObs(r3, { h1: { windows: WINDOW } }), T0);
    expect(kinds(closed.commands)).toEqual(["fetch:h1", "fetch:h2", "fetch:h3"]);
  });

  it("at the window's opening the host switches, its waiting reason cleared", () => {
    const waiting = plan(all, fleetObs(all, { h1: { fetch: fetched(1), windows: WINDOW } }), T0).rollout;
    const res = plan(waiting, fleetObs(all, { h1: { fetch: fetched(1), windows: WINDOW } }), OPENS);
    expect(kinds(res.commands)).toEqual(["switch:h1"]);
    expect(res.rollout.hosts.h1).toMatchObject({ state: "switching", switchedAt: OPENS, reason: null });
  });

  it("the progress deadline does not fail a host waiting for its window", () => {
    const waiting = plan(all, fleetObs(all, { h1: { fetch: fetched(1), windows: WINDOW } }), T0).rollout;
    // Past the deadline the rollout would have had without the window (T0 + 10 min), before it opens.
    const res = plan(waiting, fleetObs(all, { h1: { fetch: fetched(1), windows: WINDOW } }), T0 + 30 * MIN);
    expect(res.rollout.state).toBe("running");
    expect(res.rollout.hosts.h1?.state).toBe("staged");
  });

  it("a host already switching finishes although its window closed", () => {
    const switching = withHosts(all, {
      h1: { state: "verifying", switchedAt: T0 - MIN, deadlineAt: T0 + 4 * MIN, fetchAttempts: 1 },
    });
    const obs = fleetObs(switching, {
      h1: { hasImage: true, switch: ok, apps: onTarget(T0 - MIN), windows: WINDOW },
    });
    const res = plan(switching, obs, T0);
    expect(res.rollout.hosts.h1?.state).toBe("healthy");
  });
});

describe("planHostUpdate with maintenance windows (canary h1, then h2, h3)", () => {
  const job: HostUpdateRecord = createHostUpdate(
    {
      id: "hu1",
      argv: ["/bin/sh", "-c", "apt-get -y upgrade"],
      strategy: resolveHostUpdateStrategy({ canary: ["h1"], bake: 0, maxUnavailable: 2 }),
      targets: ["h1", "h2", "h3"].map((hostId) => ({ hostId, hostName: hostId })),
      active: [],
    },
    T0,
  );
  const fleet = (windows: Record<string, typeof WINDOW>): HostUpdateFleetObservation => ({
    hosts: Object.fromEntries(
      ["h1", "h2", "h3"].map((id) => [
        id,
        {
          online: true,
          command: null,
          reboot: null,
          apps: [],
          ...(windows[id] ? { windows: windows[id] } : {}),
        },
      ]),
    ),
  });
  const runPlan = (j: HostUpdateRecord, o: HostUpdateFleetObservation, now: number) =>
    planHostUpdate(frozen(structuredClone(j)), frozen(structuredClone(o)), now);

  it("a pending host outside its window is not started, has no offline clock, and wakes the job at the opening", () => {
    const res = runPlan(job, fleet({ h1: WINDOW }), T0);
    expect(res.commands).toEqual([]);
    expect(res.job.hosts.h1).toMatchObject({ state: "pending", deadlineAt: null });
    expect(res.job.hosts.h1?.reason).toBe(
      "waiting for its maintenance window (opens 2023-11-15T03:00:00.000Z)",
    );
    expect(res.nextWakeAt).toBe(OPENS);
    const again = runPlan(res.job, fleet({ h1: WINDOW }), T0 + MIN);
    expect(again.job).toEqual({ ...res.job, updatedAt: again.job.updatedAt });
    expect(again.events).toEqual([]);
  });

  it("it starts when the window opens", () => {
    const waiting = runPlan(job, fleet({ h1: WINDOW }), T0).job;
    const res = runPlan(waiting, fleet({ h1: WINDOW }), OPENS + MIN);
    expect(res.commands).toEqual([{ kind: "run", hostId: "h1" }]);
    expect(res.job.hosts.h1).toMatchObject({
      state: "running-command",
      reason: null,
      startedAt: OPENS + MIN,
    });
  });

  it("a host waiting for its window takes no slot: the next one of the wave starts", () => {
    const wave1 = {
      ...structuredClone(job),
      currentWave: 1,
      hosts: {
        ...job.hosts,
        h1: { ...(job.hosts.h1 as HostUpdateStep), state: "done" as const, doneAt: T0 },
      },
    };
    const res = runPlan(wave1, fleet({ h2: WINDOW, h3: WINDOW, h1: ALWAYS }), T0);
    expect(res.commands).toEqual([]);
    const open3 = runPlan(wave1, fleet({ h2: WINDOW, h3: ALWAYS }), T0);
    expect(open3.commands).toEqual([{ kind: "run", hostId: "h3" }]);
    expect(open3.job.hosts.h2?.state).toBe("pending");
  });

  it("a host running its command goes on when its window closes", () => {
    const running = structuredClone(job);
    running.hosts.h1 = {
      ...(running.hosts.h1 as HostUpdateStep),
      state: "running-command",
      startedAt: T0,
      deadlineAt: T0 + 31 * MIN,
    };
    const obs = fleet({ h1: WINDOW });
    (obs.hosts.h1 as { command: unknown }).command = {
      state: "succeeded",
      exitCode: 0,
      rebootRequired: false,
      reason: null,
    };
    const res = runPlan(running, obs, T0 + MIN);
    expect(res.job.hosts.h1?.state).not.toBe("pending");
    expect(res.job.hosts.h1?.state).not.toBe("failed");
  });
});

describe("estimateTimeline with maintenance windows", () => {
  it("a wave waits for the last of its hosts' windows to open; the wait is in the timeline", () => {
    const r = newRollout(3, { canary: ["h1"], waves: ["100%"], promote: "auto" });
    const inputs = { bytesByHost: { h1: 0, h2: 0, h3: 0 }, startAt: T0 };
    const plain = estimateTimeline(r, inputs);
    const waiting = estimateTimeline(r, { ...inputs, windows: { h2: WINDOW, h3: ALWAYS } });
    const wave1 = waiting.waves[1];
    const switchAt = T0 + (plain.waves[1]?.startsAtSecond ?? 0) * 1000;
    expect(wave1?.windowOpensAt).toEqual({ h2: OPENS });
    expect(wave1?.windowWaitSeconds).toBe(Math.ceil((OPENS - switchAt) / 1000));
    expect(waiting.totalSeconds).toBe(plain.totalSeconds + (wave1?.windowWaitSeconds ?? 0));
    expect(waiting.waves[0]).toMatchObject({ windowWaitSeconds: 0, windowOpensAt: {} });
  });
});
