import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  currentGeneration,
  deployApp,
  FAKETIME_LIBRARY,
  type Fleet,
  type FleetHost,
  fetchPage,
  type RolloutStatusView as RolloutView,
  rolloutStatus,
  runningGenerations,
  updateImage,
  waitFor,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// What crosses the network between controller and agents: a link cut in the middle of a switch, and
// agents whose clocks are 10 minutes off the controller's.

const PORT = 8080;
/** libfaketime moves the wall clock only: the monotonic clock stays the machine's, as with real skew. */
const skewed = (offset: string) => ({
  LD_PRELOAD: FAKETIME_LIBRARY,
  FAKETIME: offset,
  FAKETIME_DONT_FAKE_MONOTONIC: "1",
  FAKETIME_NO_CACHE: "1",
});
const STRATEGY = ["--promote", "auto", "--bake", "1s", "--canary-bake", "1s"];

describeWith(
  ["root", "btrfs", "nspawn", "netns", "busybox", "faketime"],
  "network faults and clock skew",
  () => {
    let fleet: Fleet;
    let version = 1;

    beforeAll(async () => {
      fleet = await createFleet({
        hosts: 3,
        // Pings every 2 s: a cut link drops the session within seconds, so what the agent produced while
        // cut off must travel on a new session.
        controllerArgs: ["--heartbeat-interval", "2s"],
        // host-2's clock runs 10 minutes ahead of the controller's, host-3's 10 minutes behind.
        hostAgentEnv: (i) => (i === 2 ? skewed("+10m") : i === 3 ? skewed("-10m") : {}),
      });
      await createBusyboxImage(fleet, "web", { marker: "release-1" });
      // The agent's own gate: a switch takes at least this long, which is when a test cuts the link.
      await createBusyboxApp(fleet, {
        hosts: "host-1,host-2,host-3",
        port: PORT,
        minHealthy: "3s",
        stopTimeout: "5s",
      });
      await deployApp(fleet, "site", "web@1");
    });

    afterAll(async () => {
      // A test that failed with a link down must not leave the host cut off for the teardown.
      for (const host of fleet?.hosts ?? []) await host.setLink(true).catch(() => undefined);
      await fleet?.destroy();
    });

    const host = (n: number) => fleet.hosts[n - 1] as FleetHost;

    /** A good new version from the last good one; its page says release-<its version>. */
    async function newVersion(): Promise<number> {
      const next = (await fleet.gildJson<Array<{ version: number }>>(["image", "ls", "web"])).length + 1;
      await updateImage(fleet, "web", `sed -i 's/release-${version}/release-${next}/g' /www/index.html`, {
        from: version,
      });
      version = next;
      return next;
    }

    const status = (id: string) => rolloutStatus(fleet, id);

    const watch = (id: string) => watchRollout(fleet, id);

    /**
     * `gild rollout start web@<version>`, canary `canary` then everything, with STRATEGY and these
     * gates (--min-healthy, --healthy-deadline and, when given, --progress-deadline).
     */
    const startRollout = (
      version: number,
      canary: string,
      gates: { minHealthy: string; healthyDeadline: string; progressDeadline?: string },
    ) =>
      fleet.gildJson<RolloutView>([
        "rollout",
        "start",
        `web@${version}`,
        "--canary",
        canary,
        "--waves",
        "100%",
        ...STRATEGY,
        "--min-healthy",
        gates.minHealthy,
        "--healthy-deadline",
        gates.healthyDeadline,
        ...(gates.progressDeadline ? ["--progress-deadline", gates.progressDeadline] : []),
      ]);

    const hostStep = (view: RolloutView, name: string) =>
      view.waves
        .flatMap((w) => w.hosts)
        .find((h) => h.name === name) as RolloutView["waves"][number]["hosts"][number];

    /** The agent on `h` is inside a switch (its switch record written, the outcome not yet known). */
    const switching = (h: FleetHost) => () => {
      const file = join(h.poolPath, "apps", "site", "switch.json");
      return (
        existsSync(file) && (JSON.parse(readFileSync(file, "utf8")) as { outcome: unknown }).outcome === null
      );
    };

    /** Controller and agent agree: `gild app ls` shows the generation the agent's pool points at, healthy. */
    async function agree(h: FleetHost, imageVersion: number): Promise<void> {
      await waitFor(
        async () => {
          const inst = (await appInstances(fleet, "site")).find((i) => i.host === h.name);
          return (
            inst !== undefined &&
            inst.generation === currentGeneration(h.poolPath, "site") &&
            inst.imageVersion === imageVersion &&
            inst.health === "healthy"
          );
        },
        { what: `${h.name}: controller and agent agree on web@${imageVersion}`, timeoutMs: 90_000 },
      );
      expect(runningGenerations(h.netns, "site")).toEqual([currentGeneration(h.poolPath, "site")]);
      expect(await fetchPage(h.url(PORT, "/"))).toContain(`release-${imageVersion}`);
    }

    it("g. agents 10 minutes ahead and behind: minHealthy holds on the controller's clock, health streaks are sane", async () => {
      const v = await newVersion();
      const minHealthyMs = 4_000;
      const started = await startRollout(v, "host-1", { minHealthy: "4s", healthyDeadline: "60s" });
      const done = await watch(started.id);
      expect(done.code, done.stderr).toBe(0);
      for (const name of ["host-1", "host-2", "host-3"]) {
        const step = hostStep(done.view, name);
        expect(step.state, name).toBe("healthy");
        // Counted healthy only after holding minHealthy, measured by one clock (before, the host behind
        // counted at once, and the host ahead never).
        expect((step.healthyAt as number) - (step.switchedAt as number), name).toBeGreaterThanOrEqual(
          minHealthyMs,
        );
      }
      const now = Date.now();
      for (const inst of await appInstances(fleet, "site")) {
        const since = inst.healthSince as number;
        expect(since, inst.host).toBeLessThanOrEqual(now);
        expect(now - since, inst.host).toBeLessThan(5 * 60_000);
      }
      for (const n of [1, 2, 3]) await agree(host(n), v);
    });

    it("g. a version that never turns healthy fails by its deadline on a host 10 minutes ahead, and is rolled back", async () => {
      const bad = (await updateImage(fleet, "web", "rm /www/healthz", { from: version })).version;
      const t0 = Date.now();
      const started = await startRollout(bad, "host-2", { minHealthy: "1s", healthyDeadline: "10s" });
      const done = await watch(started.id);
      expect(done.code).toBe(1);
      expect(hostStep(done.view, "host-2").state).toBe("rolled-back");
      // The agent's gate (10 s on its own clock), then the old generation's gate: not 10 minutes.
      expect(Date.now() - t0).toBeLessThan(60_000);
      await agree(host(2), version);
    });

    it("c. a link cut for 20 s mid-switch: the results reach the controller after reconnect, the rollout completes", async () => {
      const v = await newVersion();
      const started = await startRollout(v, "host-3", {
        minHealthy: "1s",
        healthyDeadline: "90s",
        progressDeadline: "120s",
      });
      await waitFor(switching(host(1)), { what: "host-1 switching", timeoutMs: 90_000, intervalMs: 20 });
      await host(1).setLink(false);
      const cutAt = Date.now();
      // The controller notices, and the cut lasts 20 s in all.
      await waitFor(
        async () => {
          const hosts = await fleet.hostStatuses();
          return hosts.find((h) => h.name === "host-1")?.state === "offline" && Date.now() - cutAt >= 20_000;
        },
        { what: "host-1 offline for 20 s", timeoutMs: 60_000, intervalMs: 250 },
      );
      // The switch ended meanwhile, on the far side of the cut.
      expect(switching(host(1))()).toBe(false);
      await host(1).setLink(true);
      const done = await watch(started.id);
      expect(done.code, done.stderr).toBe(0);
      expect(done.view.state).toBe("succeeded");
      expect(hostStep(done.view, "host-1").state).toBe("healthy");
      for (const n of [1, 2, 3]) await agree(host(n), v);
    });

    it("c. a cut longer than the deadlines fails the wave and rolls back; the host converges when it returns", async () => {
      const before = version;
      const v = await newVersion();
      const started = await startRollout(v, "host-3", {
        minHealthy: "1s",
        healthyDeadline: "10s",
        progressDeadline: "12s",
      });
      await waitFor(switching(host(1)), { what: "host-1 switching", timeoutMs: 90_000, intervalMs: 20 });
      await host(1).setLink(false);
      try {
        const done = await watch(started.id);
        expect(done.code).toBe(1);
        expect(done.view.state).toBe("failed");
        const cut = hostStep(done.view, "host-1");
        // It could not be reached to roll back within the deadline: a state of its own.
        expect(cut.state).toBe("rollback-failed");
        expect(cut.reason).toMatch(/rollback did not complete/);
        expect(hostStep(done.view, "host-2").state).toBe("rolled-back");
        expect(hostStep(done.view, "host-3").state).toBe("rolled-back");
        const events = (await status(started.id)).events ?? [];
        expect(events.some((e) => e.message.includes("-> rollback-failed"))).toBe(true);
      } finally {
        await host(1).setLink(true);
      }
      // Back on the link: its switch's result arrives, then the rollback queued for it runs.
      for (const n of [1, 2, 3]) await agree(host(n), before);
    });
  },
);
