import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  type HostUpdateStatusView,
  hostUpdateStatus,
  journaledKinds,
  REBOOT_BY_RESTART_ENV,
  readStartsLog,
  standInForReboots,
  waitFor,
  watchHostUpdate,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const PORT = 8080;
// Fast clocks: a whole job takes seconds.
const FAST = ["--min-healthy", "1s", "--bake", "0s", "--deadline", "60s", "--timeout", "60s"];

// Host updates in the namespaced fleet (docs/architecture.md, Host updates): the command runs on the
// host itself (here every host is this machine, in its own network namespace), and a reboot is an
// agent restart through the documented test hook (GILD_TEST_REBOOT=restart).
describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "host updates across a fleet", () => {
  let fleet: Fleet;
  let reboots: ReturnType<typeof standInForReboots>;
  const scratch = mkdtempSync(join(tmpdir(), "gild-host-update-"));

  const instances = () => appInstances(fleet, "site");

  /** The commands of a job each agent journaled, by kind: proof of what was (and was not) sent to whom. */
  const journaled = (jobId: string) => journaledKinds(fleet, jobId);

  const start = (args: string[]) => fleet.gildJson<HostUpdateStatusView>(["host-update", "start", ...args]);

  beforeAll(async () => {
    fleet = await createFleet({
      hosts: 3,
      hostLabels: () => ({ role: "web" }),
      hostAgentEnv: () => ({ ...REBOOT_BY_RESTART_ENV }),
    });
    reboots = standInForReboots(fleet);
    await createBusyboxImage(fleet, "web", { marker: "release-1" });
    await createBusyboxApp(fleet, { hosts: "role=web", port: PORT, stopTimeout: "5s" });
    await deployApp(fleet, "site", "web@1");
    await waitFor(
      async () => {
        const all = await instances();
        return all.length === 3 && all.every((i) => i.health === "healthy");
      },
      { what: "every host healthy", timeoutMs: 60_000 },
    );
  });

  afterAll(async () => {
    await reboots?.stop();
    await fleet?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("runs a command in two waves, rebooting each host and waiting for its apps: every host done", async () => {
    const marker = join(scratch, "ran");
    const pids = fleet.hosts.map((h) => h.pid());
    const starts = fleet.hosts.map((h) => readStartsLog(h.poolPath, "site").length);
    const started = await start([
      "--hosts",
      "role=web",
      "--canary",
      "host-1",
      "--waves",
      "100%",
      "--max-unavailable",
      "2",
      "--reboot",
      "always",
      ...FAST,
      "--",
      "/bin/sh",
      "-c",
      `echo ran >> '${marker}'; echo upgraded`,
    ]);
    // Waves after the canary are in the order of the hosts' id hashes: compare them as sets.
    expect(started.waves.map((w) => w.hosts.map((h) => h.name).sort())).toEqual([
      ["host-1"],
      ["host-2", "host-3"],
    ]);
    const done = await watchHostUpdate(fleet, started.id);
    expect(done.code, done.stderr).toBe(0);
    expect(done.view.state).toBe("succeeded");
    for (const host of done.view.waves.flatMap((w) => w.hosts)) {
      expect(host.state, host.name).toBe("done");
      expect(host.exitCode).toBe(0);
      expect(host.rebootedAt).not.toBeNull();
      expect(host.outputTail).toBe("upgraded\n");
    }
    // The command ran once per host, and each host was "rebooted" once: a new agent process, its app
    // stopped and started again (one more line in the app's starts log), healthy after.
    expect(readFileSync(marker, "utf8")).toBe("ran\nran\nran\n");
    const sent = journaled(started.id);
    for (const host of fleet.hosts)
      expect(sent[host.name], host.name).toEqual(["rebootHost", "runHostCommand"]);
    expect(reboots.restarts()).toBe(3);
    fleet.hosts.forEach((h, i) => {
      expect(h.pid(), h.name).not.toBe(pids[i]);
      expect(readStartsLog(h.poolPath, "site").length, h.name).toBe((starts[i] as number) + 1);
    });
    const after = await instances();
    expect(after.every((i) => i.health === "healthy")).toBe(true);
    // The canary finished before the next wave began.
    const canary = done.view.waves[0]?.hosts[0];
    for (const host of done.view.waves[1]?.hosts ?? [])
      expect(host.startedAt as number).toBeGreaterThanOrEqual(canary?.doneAt as number);
    // Two waves, each host held to --deadline 60s: a slow but correct job (every core busy, in the
    // loaded pass) may take about two minutes, so the test waits longer than the job's own bound.
  }, 300_000);

  it("finishes after the controller is killed with -9 mid-job, running and rebooting no host twice", async () => {
    const marker = join(scratch, "ran-again");
    const restartsBefore = reboots.restarts();
    const started = await start([
      "--hosts",
      "role=web",
      "--canary",
      "host-3",
      "--waves",
      "100%",
      "--reboot",
      "always",
      ...FAST,
      "--min-healthy",
      "3s",
      "--",
      "/bin/sh",
      "-c",
      `echo ran >> '${marker}'`,
    ]);
    await waitFor(
      async () => {
        const s = await hostUpdateStatus(fleet, started.id);
        return s.currentWave >= 1 && s.waves[1]?.hosts.some((h) => h.state !== "pending");
      },
      { what: "the wave after the canary under way", timeoutMs: 60_000 },
    );
    await fleet.killController();
    await fleet.startController();
    const done = await watchHostUpdate(fleet, started.id);
    expect(done.code, done.stderr).toBe(0);
    expect(done.view.state).toBe("succeeded");
    expect(readFileSync(marker, "utf8")).toBe("ran\nran\nran\n");
    const sent = journaled(started.id);
    for (const host of fleet.hosts)
      expect(sent[host.name], host.name).toEqual(["rebootHost", "runHostCommand"]);
    expect(reboots.restarts() - restartsBefore).toBe(3);
  });

  it("stops at a failing canary: the job fails with the exit code and output, nobody else runs it", async () => {
    const started = await start([
      "--hosts",
      "host-1,host-2,host-3",
      "--canary",
      "host-2",
      "--on-failure",
      "fail",
      ...FAST,
      "--command",
      "echo 'E: Unable to fetch some archives' >&2; exit 7",
    ]);
    const done = await watchHostUpdate(fleet, started.id);
    expect(done.code).toBe(1);
    expect(done.view.state).toBe("failed");
    expect(done.view.reasonCode).toBe("GILD_HOST_UPDATE_FAILED");
    expect(done.view.reason).toContain("nothing is undone");
    const canary = done.view.waves[0]?.hosts[0];
    expect(canary).toMatchObject({ name: "host-2", state: "failed", exitCode: 7 });
    expect(canary?.reason).toContain("exit code 7: E: Unable to fetch some archives");
    for (const host of done.view.waves.slice(1).flatMap((w) => w.hosts)) expect(host.state).toBe("pending");
    const sent = journaled(started.id);
    expect(sent["host-2"]).toEqual(["runHostCommand"]);
    expect(sent["host-1"]).toEqual([]);
    expect(sent["host-3"]).toEqual([]);
    // The history lists every job, newest first, with how it ended.
    const history = await fleet.gildJson<Array<{ id: string; state: string }>>(["host-update", "ls"]);
    expect(history.map((j) => j.state)).toEqual(["failed", "succeeded", "succeeded"]);
    expect(history[0]?.id).toBe(started.id);
    const table = await fleet.gild(["host-update", "ls"]);
    expect(table.stdout).toMatch(new RegExp(`${started.id}\\s+FAILED\\s+0/3 done`));
  });
});
