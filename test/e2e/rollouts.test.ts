import {
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  fetchPage,
  journaledKinds,
  type RolloutStatusView as RolloutView,
  readStartsLog,
  rolloutStatus,
  updateImage,
  waitFor,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const PORT = 8080;
// Fast clocks: the strategy's gates, scaled down so a whole rollout takes seconds.
const FAST = [
  "--min-healthy",
  "1s",
  "--bake",
  "1s",
  "--canary-bake",
  "1s",
  "--healthy-deadline",
  "20s",
  "--progress-deadline",
  "30s",
];

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "rollouts across a fleet", () => {
  let fleet: Fleet;
  let version = 1;
  let good = 1;

  /** A new image version: the page says `marker`; `broken` makes its service exit at start. */
  async function newVersion(marker: string, broken = false): Promise<number> {
    const script = broken
      ? "printf '#!/bin/sh\\necho \"broken release\" >&2\\nexit 3\\n' > /usr/local/bin/serve"
      : `sed -i 's/<p>.*<\\/p>/<p>${marker}<\\/p>/' /www/index.html && sed -i 's/<title>.*<\\/title>/<title>${marker}<\\/title>/' /www/index.html`;
    // Always from the last good version: an update of the broken one would inherit its breakage.
    const created = await updateImage(fleet, "web", script, { from: good });
    version = created.version;
    if (!broken) good = created.version;
    return created.version;
  }

  const page = (hostIndex: number): Promise<string> =>
    fetchPage(fleet.hosts[hostIndex]?.url(PORT, "/") as string, 3000);

  const allServe = async (marker: string) => {
    for (let i = 0; i < fleet.hosts.length; i++) expect(await page(i), `host-${i + 1}`).toContain(marker);
  };

  const instances = () => appInstances(fleet, "site");

  const generations = async (): Promise<Record<string, number>> =>
    Object.fromEntries((await instances()).map((i) => [i.host, i.generation]));

  const startsLog = (hostIndex: number) => readStartsLog(fleet.hosts[hostIndex]?.poolPath as string, "site");

  const status = (id = "current") => rolloutStatus(fleet, id);

  const start = async (args: string[]): Promise<RolloutView> =>
    fleet.gildJson<RolloutView>(["rollout", "start", ...args]);

  /** `rollout status --watch`: what a script waiting on a rollout sees. */
  const watch = (id: string) => watchRollout(fleet, id);

  /** The commands of a job each agent journaled, by kind: proof of what was (and was not) sent to whom. */
  const journaled = (rolloutId: string) => journaledKinds(fleet, rolloutId);

  const waitForHealthyOn = (v: number) =>
    waitFor(
      async () => {
        const all = await instances();
        return all.length === 4 && all.every((i) => i.imageVersion === v && i.health === "healthy");
      },
      {
        what: `every host healthy on v${v}`,
        timeoutMs: 60_000,
      },
    );

  beforeAll(async () => {
    fleet = await createFleet({
      hosts: 4,
      hostLabels: (i) => ({ role: "web", zone: i % 2 === 0 ? "a" : "b" }),
    });
    await createBusyboxImage(fleet, "web", { marker: "release-1" });
    await createBusyboxApp(fleet, { hosts: "role=web", port: PORT, stopTimeout: "5s" });
    await deployApp(fleet, "site", "web@1");
    await waitForHealthyOn(1);
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  it("plans waves with hosts and a timeline, without touching anything", async () => {
    const v = await newVersion("release-2");
    const plan = await fleet.gildJson<{
      waves: Array<{ canary: boolean; hosts: string[] }>;
      timeline: { totalSeconds: number };
    }>(["rollout", "plan", `web@${v}`, "--waves", "1,100%", ...FAST]);
    expect(plan.waves.map((w) => w.hosts.length)).toEqual([1, 1, 2]);
    expect(plan.waves[0]?.canary).toBe(true);
    expect(plan.timeline.totalSeconds).toBeGreaterThan(0);
    expect((await fleet.gildJson<RolloutView[]>(["rollout", "ls"])).length).toBe(0);
  });

  it("rolls a good version out canary first, wave by wave, to success: stable, every host serving it", async () => {
    const before = await generations();
    const started = await start([`web@${version}`, "--waves", "1,100%", "--promote", "auto", ...FAST]);
    expect(started.waves[0]?.canary).toBe(true);
    const done = await watch(started.id);
    expect(done.code, done.stderr).toBe(0);
    expect(done.view.state).toBe("succeeded");
    expect(done.view.versionStatus).toBe("stable");
    await allServe("release-2");
    const after = await generations();
    for (const host of fleet.hosts) expect(after[host.name]).toBe((before[host.name] as number) + 1);
    // A second rollout to the version everywhere already is refused as a no-op.
    const again = await fleet.gild(["rollout", "start", `web@${version}`]);
    expect(again.stderr).toContain("GILD_ROLLOUT_NOOP");
  });

  it("stops a bad version at the canary: rolled back, failed, marked bad, nobody else switched", async () => {
    const bad = await newVersion("release-3", true);
    const started = await start([`web@${bad}`, "--canary", "host-1", "--promote", "auto", ...FAST]);
    const done = await watch(started.id);
    expect(done.code).toBe(1);
    expect(done.view.state).toBe("failed");
    expect(done.view.versionStatus).toBe("bad");
    const canary = done.view.waves[0]?.hosts[0];
    expect(canary?.name).toBe("host-1");
    expect(canary?.state).toBe("rolled-back");
    expect(canary?.reason).toContain("broken release");
    await allServe("release-2");
    const sent = journaled(started.id);
    expect(sent["host-1"]).toContain("deployApp");
    for (const other of ["host-2", "host-3", "host-4"]) expect(sent[other]).not.toContain("deployApp");
  });

  it("finishes a rollout after the controller is killed with -9 mid-wave, switching no host twice", async () => {
    const v = await newVersion("release-4");
    const startsBefore = fleet.hosts.map((_, i) => startsLog(i).length);
    // A long minHealthy keeps the wave verifying long enough to kill the controller inside it.
    const started = await start([
      `web@${v}`,
      "--waves",
      "1,100%",
      "--promote",
      "auto",
      ...FAST,
      "--min-healthy",
      "4s",
    ]);
    await waitFor(
      async () => {
        const s = await status(started.id);
        return s.currentWave >= 1 && s.waves[s.currentWave]?.hosts.some((h) => h.state === "verifying");
      },
      { what: "a wave after the canary verifying", timeoutMs: 60_000 },
    );
    await fleet.killController();
    await fleet.startController();
    const done = await watch(started.id);
    expect(done.code, done.stderr).toBe(0);
    expect(done.view.state).toBe("succeeded");
    await allServe("release-4");
    // Each host started the new version exactly once (one line per start in the app's data) ...
    for (const [i, host] of fleet.hosts.entries())
      expect(startsLog(i).length, host.name).toBe((startsBefore[i] as number) + 1);
    // ... and was sent one switch, whatever the restart re-sent.
    const sent = journaled(started.id);
    for (const host of fleet.hosts)
      expect(sent[host.name]?.filter((k) => k === "deployApp")).toEqual(["deployApp"]);
  });

  it("waits for manual promotion after the canary; pause stops the clocks and resume restarts them", async () => {
    const v = await newVersion("release-5");
    const started = await start([`web@${v}`, "--waves", "100%", ...FAST, "--bake", "3s"]);
    await waitFor(async () => (await status(started.id)).state === "awaiting-promotion", {
      what: "awaiting promotion",
      timeoutMs: 60_000,
    });
    expect(await page(0)).toMatch(/release-[45]/);
    const paused = await fleet.gildJson<RolloutView>(["rollout", "pause", started.id]);
    expect(paused.state).toBe("paused");
    expect(paused.clocks.pausedAt).not.toBeNull();
    const resumed = await fleet.gildJson<RolloutView>(["rollout", "resume", started.id]);
    expect(resumed.state).toBe("awaiting-promotion");
    const promoted = await fleet.gildJson<RolloutView>(["rollout", "promote", started.id]);
    expect(["running", "succeeded"]).toContain(promoted.state);
    const done = await watch(started.id);
    expect(done.code, done.stderr).toBe(0);
    await allServe("release-5");
  });

  it("pauses mid-bake with every clock stopped, then finishes after resume", async () => {
    const v = await newVersion("release-6");
    const started = await start([
      `web@${v}`,
      "--waves",
      "1,100%",
      "--promote",
      "auto",
      ...FAST,
      "--canary-bake",
      "30s",
    ]);
    await waitFor(async () => (await status(started.id)).clocks.bakeUntil !== null, {
      what: "the canary bake",
      timeoutMs: 60_000,
    });
    const paused = await fleet.gildJson<RolloutView>(["rollout", "pause", started.id]);
    const bakeBefore = paused.clocks.bakeUntil as number;
    // While paused nothing moves: the other hosts stay where they were.
    expect(
      (await status(started.id)).waves.slice(1).flatMap((w) => w.hosts.map((h) => h.state)),
    ).not.toContain("switching");
    const resumed = await fleet.gildJson<RolloutView>(["rollout", "resume", started.id]);
    expect(resumed.clocks.bakeUntil as number).toBeGreaterThan(bakeBefore);
    await fleet.gildJson(["rollout", "promote", started.id]);
    const done = await watch(started.id);
    expect(done.code, done.stderr).toBe(0);
    await allServe("release-6");
  });

  it("aborts mid-rollout (hosts stay where they are), then rolls the aborted rollout back", async () => {
    const v = await newVersion("release-7");
    const started = await start([`web@${v}`, "--canary", "host-2", "--waves", "100%", ...FAST]);
    await waitFor(async () => (await status(started.id)).state === "awaiting-promotion", {
      what: "the canary done",
      timeoutMs: 60_000,
    });
    const aborted = await fleet.gildJson<RolloutView>(["rollout", "abort", started.id]);
    expect(aborted.state).toBe("aborted");
    expect(await page(1)).toContain("release-7");
    expect(await page(0)).toContain("release-6");
    const rolled = await fleet.gildJson<RolloutView>(["rollout", "rollback", started.id]);
    expect(rolled.state).toMatch(/rolling-back|rolled-back/);
    const done = await watch(started.id);
    expect(done.view.state).toBe("rolled-back");
    await allServe("release-6");
  });

  it("rolls a succeeded rollout back to the previous generation on every host, without downloads", async () => {
    const v = await newVersion("release-8");
    const started = await start([`web@${v}`, "--waves", "100%", "--promote", "auto", ...FAST]);
    expect((await watch(started.id)).code).toBe(0);
    await allServe("release-8");
    const rolled = await fleet.gildJson<RolloutView>([
      "rollout",
      "rollback",
      started.id,
      "--max-parallel",
      "2",
    ]);
    expect(rolled.state).toMatch(/rolling-back|rolled-back/);
    const done = await watch(started.id);
    expect(done.view.state).toBe("rolled-back");
    expect(done.view.versionStatus).toBe("bad");
    await allServe("release-6");
    const sent = journaled(started.id);
    for (const host of fleet.hosts)
      expect(sent[host.name]?.filter((k) => k === "rollbackApp")).toEqual(["rollbackApp"]);
  });

  it("fails a wave whose agent went away, by its progress deadline, and rolls back: nothing hangs", async () => {
    const v = await newVersion("release-9");
    const host4 = fleet.hosts[3] as Fleet["hosts"][number];
    const started = await start([
      `web@${v}`,
      "--canary",
      "host-1",
      "--waves",
      "100%",
      "--promote",
      "auto",
      ...FAST,
      // The canary verifies for seconds (a window the polls below cannot miss, even on a loaded
      // machine), and the wave after it has a short progress deadline.
      "--min-healthy",
      "5s",
      "--progress-deadline",
      "20s",
    ]);
    // host-4 goes away while the canary verifies: its wave starts without it.
    await waitFor(async () => (await status(started.id)).waves[0]?.hosts[0]?.state === "verifying", {
      what: "the canary verifying",
      timeoutMs: 60_000,
    });
    await host4.killAgent();
    const t0 = Date.now();
    const done = await watch(started.id);
    expect(done.code).toBe(1);
    expect(done.view.state).toBe("failed");
    expect(Date.now() - t0).toBeLessThan(90_000);
    const failedHost = done.view.waves.flatMap((w) => w.hosts).find((h) => h.name === "host-4");
    expect(failedHost?.reason).toMatch(/progress deadline/);
    await host4.startAgent();
    for (const i of [0, 1, 2]) expect(await page(i)).toContain("release-6");
  });

  it("lists rollout history and records every mutation in the audit log", async () => {
    const history = await fleet.gildJson<RolloutView[]>(["rollout", "ls"]);
    expect(history.length).toBeGreaterThanOrEqual(7);
    const audit = await fleet.gildJson<Array<{ actor: string; path: string; summary: string | null }>>([
      "audit",
      "--limit",
      "500",
    ]);
    expect(audit.some((e) => e.path === "/v1/rollouts" && e.summary?.includes("started"))).toBe(true);
    expect(audit.some((e) => e.path.endsWith("/pause"))).toBe(true);
  });
});
