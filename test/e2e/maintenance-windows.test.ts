import type { HostView, RolloutPlanView } from "@gild/api-client";
import {
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  type RolloutStatusView,
  rolloutStatus,
  updateImage,
  waitFor,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const PORT = 8080;
const FAST = ["--min-healthy", "1s", "--bake", "1s", "--canary-bake", "1s", "--healthy-deadline", "20s"];

// A rollout whose non-canary host is outside its maintenance window: the canary goes on, the other host
// is fetched but stays staged, saying why; once its window is removed the rollout completes.
describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "maintenance windows", () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await createFleet({ hosts: 2, hostLabels: () => ({ role: "web" }) });
    await createBusyboxImage(fleet, "web", { marker: "release-1" });
    await createBusyboxApp(fleet, { hosts: "role=web", port: PORT, stopTimeout: "5s" });
    await deployApp(fleet, "site", "web@1");
    await waitFor(
      async () => {
        const all = await appInstances(fleet, "site");
        return all.length === 2 && all.every((i) => i.health === "healthy");
      },
      { what: "both hosts healthy on web@1", timeoutMs: 60_000 },
    );
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  it("holds a host's switch until its window is open, and goes on when the window is removed", async () => {
    const [canary, other] = fleet.hosts.map((h) => h.name) as [string, string];
    const { version } = await updateImage(fleet, "web", "echo release-2 > /www/release");
    // An hour twelve hours from now: closed now, whatever the time of day.
    const hour = (new Date().getUTCHours() + 12) % 24;
    const hh = (h: number) => String(h).padStart(2, "0");
    const spec = `daily ${hh(hour)}:00-${hh((hour + 1) % 24)}:00 UTC`;
    await fleet.gildJson(["host", "window", "set", other, spec]);

    const hosts = await fleet.gildJson<HostView[]>(["hosts"]);
    expect(hosts.find((h) => h.name === other)?.window).toMatchObject({ spec, open: false });
    expect(hosts.find((h) => h.name === canary)?.window).toMatchObject({ spec: null, open: true });
    const rules = await fleet.gildJson<Array<{ target: string; hosts: string[] }>>(["host", "window", "ls"]);
    expect(rules).toMatchObject([{ target: other, hosts: [other] }]);

    const plan = await fleet.gildJson<RolloutPlanView>([
      "rollout",
      "plan",
      `web@${version}`,
      "--canary",
      canary,
      ...FAST,
    ]);
    expect(Object.keys(plan.timeline.waves.at(-1)?.windowOpensAt ?? {})).toEqual([other]);
    expect(plan.timeline.waves.at(-1)?.windowWaitSeconds).toBeGreaterThan(0);

    const started = await fleet.gildJson<RolloutStatusView>([
      "rollout",
      "start",
      `web@${version}`,
      "--canary",
      canary,
      "--promote",
      "auto",
      ...FAST,
    ]);
    const hostOf = (view: RolloutStatusView, name: string) =>
      view.waves.flatMap((w) => w.hosts).find((h) => h.name === name);
    const waiting = await waitFor(
      async () => {
        const view = await rolloutStatus(fleet, started.id);
        const step = hostOf(view, other);
        return step?.state === "staged" && step.reason?.includes("waiting for its maintenance window")
          ? view
          : undefined;
      },
      { what: `${other} staged, waiting for its maintenance window`, timeoutMs: 90_000 },
    );
    expect(hostOf(waiting, canary)?.state).toBe("healthy");
    expect(waiting.state).toBe("running");
    expect((waiting.events ?? []).some((e) => e.message.includes("waiting for its maintenance window"))).toBe(
      true,
    );
    // Nothing was switched on the waiting host: it still runs web@1.
    const before = await appInstances(fleet, "site");
    expect(before.find((i) => i.host === other)?.imageVersion).toBe(1);

    await fleet.gildJson(["host", "window", "rm", other]);
    const done = await watchRollout(fleet, started.id, 120_000);
    expect([done.code, done.view.state]).toEqual([0, "succeeded"]);
    expect(hostOf(done.view, other)).toMatchObject({ state: "healthy", reason: null });
  });
});
