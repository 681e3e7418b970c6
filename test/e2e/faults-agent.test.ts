import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  currentGeneration,
  deployApp,
  descendantProcesses,
  type Fleet,
  type FleetHost,
  fetchPage,
  fillFilesystem,
  findRepoRoot,
  gildCliPath,
  journalEntries,
  processAlive,
  readStartsLog,
  rolloutStatus,
  run,
  runningGenerations,
  treeDigest,
  updateImage,
  waitFor,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// The agent's failure paths, with real agents killed, starved of disk and fed damaged state: what the
// operator sees (CLI), and that nothing is lost or left behind (pool, processes, journal).

interface HostOutcome {
  host: string;
  state: string;
  generation?: number;
  reason?: string;
  error?: { code: string; message: string };
}

const PORT = 8080;
const MIB = 1024 * 1024;

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "agent faults", () => {
  let fleet: Fleet;
  let host1: FleetHost;
  let host2: FleetHost;

  beforeAll(async () => {
    // host-2 downloads slowly, so that a test can kill it in the middle of a download.
    fleet = await createFleet({
      hosts: 2,
      hostAgentArgs: (i) => (i === 2 ? ["--max-download-rate", "24MiB"] : []),
    });
    host1 = fleet.hosts[0] as FleetHost;
    host2 = fleet.hosts[1] as FleetHost;
    await createBusyboxImage(fleet, "web", { marker: "site v1" });
    // Long enough to kill an agent while a switch waits for its health gate.
    await createBusyboxApp(fleet, {
      hosts: "host-1,host-2",
      port: PORT,
      minHealthy: "3s",
      healthyDeadline: "8s",
      stopTimeout: "5s",
    });
    await deployApp(fleet, "site", "web@1");
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  /** `gild <args> --json` run to its end: exit code and the per-host outcomes it printed. */
  async function hostsCommand(
    args: string[],
  ): Promise<{ code: number; hosts: HostOutcome[]; output: string }> {
    const res = await fleet.gild([...args, "--json"], { timeoutMs: 240_000 });
    const parsed = JSON.parse(res.stdout.trim() || "[]") as HostOutcome[] | { error: unknown };
    return {
      code: res.code,
      hosts: Array.isArray(parsed) ? parsed : [],
      output: `${res.stderr}${res.stdout}`,
    };
  }

  const staging = (host: FleetHost) => readdirSync(join(host.poolPath, ".staging"));
  const spool = (host: FleetHost) => readdirSync(join(host.poolPath, ".spool"));
  const hasImage = (host: FleetHost, line: string, version: number) =>
    existsSync(join(host.poolPath, "images", line, String(version), "rootfs"));

  it("a. kill -9 while btrfs receive runs: the receive dies with the agent, staging is swept, the pull completes once", async () => {
    await createBusyboxImage(fleet, "big", {
      marker: "big v1",
      payload: { path: "srv/payload.bin", bytes: 160 * MIB },
    });
    const agentPid = host1.pid() as number;
    const pushing = hostsCommand(["image", "push", "big@1", "--hosts", "host-1"]);
    // `btrfs receive` runs beside the download, fed each chunk once it matched its signed digest.
    const receivePid = await waitFor(() => descendantProcesses(agentPid, ["btrfs", "receive"])[0], {
      what: "btrfs receive running under the agent",
      timeoutMs: 120_000,
      intervalMs: 5,
    });
    await host1.killAgent();
    // The agent's spawn helper kills it when the agent is gone (and setpriv's parent-death signal when
    // the helper is): no orphan goes on writing.
    await waitFor(() => !processAlive(receivePid), {
      what: "the orphaned receive to end",
      timeoutMs: 10_000,
    });
    expect(staging(host1).length).toBeGreaterThan(0);
    expect(hasImage(host1, "big", 1)).toBe(false);
    await host1.startAgent();
    const pushed = await pushing;
    expect(pushed.code, pushed.output).toBe(0);
    expect(pushed.hosts[0]?.state).toBe("done");
    expect(staging(host1)).toEqual([]);
    expect(spool(host1)).toEqual([]);
    expect(await treeDigest(join(host1.poolPath, "images", "big", "1", "rootfs"))).toEqual(
      await treeDigest(join(fleet.controllerPool, "images", "big", "1", "rootfs")),
    );
    // No partial subvolume anywhere in the pool: only the images and the app's generations.
    const subvolumes = (await run("btrfs", ["subvolume", "list", "-o", host1.poolPath])).stdout;
    const paths = subvolumes
      .trim()
      .split("\n")
      .map((l) => l.split(" path ")[1] ?? "")
      .sort();
    expect(paths.filter((p) => !/(^|\/)(images\/\w+\/\d+\/rootfs|apps\/site\/\d+)$/.test(p))).toEqual([]);
    // One pull command, journaled once, final.
    const pulls = journalEntries(host1.stateDir).filter((e) => e.kind === "pullImage");
    expect(pulls.map((e) => e.state)).toEqual(pulls.map(() => "final"));
    expect(new Set(pulls.map((e) => e.commandId)).size).toBe(pulls.length);
  });

  it("e. a truncated journal entry is answered at once with GILD_STATE_CORRUPT, not left to the controller's deadline", async () => {
    const pushing = hostsCommand(["image", "push", "big@1", "--hosts", "host-2"]);
    await waitFor(() => spool(host2).length > 0, { what: "host-2 downloading", timeoutMs: 60_000 });
    await host2.killAgent();
    const entry = journalEntries(host2.stateDir).find((e) => e.kind === "pullImage" && e.state === "running");
    expect(entry, "the pull's journal entry").toBeDefined();
    const file = entry?.file as string;
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    const t0 = Date.now();
    await host2.startAgent();
    const pushed = await pushing;
    // The controller sent the open pull again on reconnect; the agent answered from the damaged entry.
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(pushed.code).toBe(1);
    expect(pushed.hosts[0]?.error?.code, pushed.output).toBe("GILD_STATE_CORRUPT");
    expect(pushed.hosts[0]?.error?.message).toContain("damaged");
    // The damaged entry was replaced by that answer: a repeat gets the same one.
    expect(journalEntries(host2.stateDir).find((e) => e.file === file)?.state).toBe("final");
    // The operator pushes again: a new command, and the spooled bytes are not lost.
    const again = await hostsCommand(["image", "push", "big@1", "--hosts", "host-2"]);
    expect(again.code, again.output).toBe(0);
    expect(hasImage(host2, "big", 1)).toBe(true);
  });

  it("e. a damaged identity or credential stops the agent with exit status 78 (no restart loop) and names the file", async () => {
    await host2.stopAgent();
    const run78 = () =>
      host2.exec(
        [
          process.execPath,
          gildCliPath(),
          "agent",
          "run",
          "--state-dir",
          host2.stateDir,
          "--pool",
          host2.poolPath,
        ],
        { timeoutMs: 60_000 },
      );
    const unit = readFileSync(join(findRepoRoot(), "deploy", "systemd", "gild-agent.service"), "utf8");
    expect(unit).toMatch(/^RestartPreventExitStatus=78$/m);
    for (const [name, damage] of [
      ["identity.json", (text: string) => text.slice(0, Math.floor(text.length / 2))],
      ["credential", () => "not a credential\n"],
      ["controller-signing.pub", () => "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
    ] as const) {
      const path = join(host2.stateDir, name);
      const original = readFileSync(path, "utf8");
      writeFileSync(path, damage(original));
      try {
        const res = await run78();
        expect(res.code, `${name}: ${res.stderr}`).toBe(78);
        expect(res.stderr).toContain("GILD_STATE_CORRUPT");
        expect(res.stderr).toContain(path);
      } finally {
        writeFileSync(path, original);
      }
    }
    await host2.startAgent();
  });

  /** Wait until a switch on host-1 is under way: its record written, the old generation stopped, the new one running. */
  async function midSwitch(): Promise<number> {
    const intentFile = join(host1.poolPath, "apps", "site", "switch.json");
    return waitFor(
      () => {
        if (!existsSync(intentFile)) return false;
        const intent = JSON.parse(readFileSync(intentFile, "utf8")) as { to: number; outcome: unknown };
        const running = runningGenerations(host1.netns, "site");
        return intent.outcome === null && running.length === 1 && running[0] === intent.to
          ? intent.to
          : false;
      },
      {
        what: "host-1 mid-switch (old stopped, new running, not yet healthy)",
        timeoutMs: 60_000,
        intervalMs: 20,
      },
    );
  }

  it("b. kill -9 mid-switch, new version good: the restarted agent finishes the switch on the new generation", async () => {
    await updateImage(fleet, "web", "sed -i 's/site v1/site v2/' /www/index.html");
    const starts = readStartsLog(host1.poolPath, "site").length;
    const deploying = hostsCommand(["app", "deploy", "site", "--image", "web@2", "--host", "host-1"]);
    const target = await midSwitch();
    await host1.killAgent();
    await host1.startAgent();
    const deployed = await deploying;
    expect(deployed.code, deployed.output).toBe(0);
    expect(deployed.hosts[0]).toMatchObject({ state: "done", generation: target });
    // Exactly one generation runs, the new one, started once (re-adopted, not restarted).
    expect(runningGenerations(host1.netns, "site")).toEqual([target]);
    expect(currentGeneration(host1.poolPath, "site")).toBe(target);
    expect(readStartsLog(host1.poolPath, "site").length).toBe(starts + 1);
    expect(existsSync(join(host1.poolPath, "apps", "site", "switch.json"))).toBe(false);
    expect(await fetchPage(host1.url(PORT, "/"))).toContain("site v2");
    // The controller shows the truth.
    await waitFor(
      async () => {
        const inst = (await appInstances(fleet, "site")).find((i) => i.host === "host-1");
        return inst?.generation === target && inst.imageVersion === 2 && inst.health === "healthy";
      },
      { what: "gild app ls: host-1 healthy on web@2", timeoutMs: 30_000 },
    );
  });

  it("b. kill -9 mid-switch, new version never healthy: the restarted agent goes back to the old generation, healthy", async () => {
    await updateImage(fleet, "web", "rm /www/healthz");
    const before = currentGeneration(host1.poolPath, "site") as number;
    const deploying = hostsCommand(["app", "deploy", "site", "--image", "web@3", "--host", "host-1"]);
    const target = await midSwitch();
    expect(target).toBeGreaterThan(before);
    await host1.killAgent();
    await host1.startAgent();
    const deployed = await deploying;
    expect(deployed.code).toBe(1);
    expect(deployed.hosts[0], deployed.output).toMatchObject({ state: "rolled-back", generation: before });
    expect(deployed.hosts[0]?.error?.code).toBe("GILD_HEALTH_FAILED");
    expect(runningGenerations(host1.netns, "site")).toEqual([before]);
    expect(currentGeneration(host1.poolPath, "site")).toBe(before);
    // The failed generation was removed again; its log stays.
    expect(existsSync(join(host1.poolPath, "apps", "site", String(target)))).toBe(false);
    expect(await fetchPage(host1.url(PORT, "/"))).toContain("site v2");
    await waitFor(
      async () => {
        const inst = (await appInstances(fleet, "site")).find((i) => i.host === "host-1");
        return inst?.generation === before && inst.state === "running" && inst.health === "healthy";
      },
      { what: "gild app ls: host-1 healthy on the old generation", timeoutMs: 30_000 },
    );
  });

  /** Make the generation host-1 runs unhealthy (its /healthz gone): what it goes back to will not pass. */
  function breakCurrentGeneration(): () => void {
    const current = currentGeneration(host1.poolPath, "site") as number;
    const healthz = join(host1.poolPath, "apps", "site", String(current), "www", "healthz");
    rmSync(healthz);
    return () => writeFileSync(healthz, "ok\n");
  }

  it("1. a rollback whose generation does not turn healthy says so: rollback-failed, with the probe's result and log tail", async () => {
    const broken = await updateImage(
      fleet,
      "web",
      "printf '#!/bin/sh\\necho \"broken release\" >&2\\nexit 3\\n' > /usr/local/bin/serve",
      { from: 2 },
    );
    const restore = breakCurrentGeneration();
    try {
      const before = currentGeneration(host1.poolPath, "site") as number;
      const deployed = await hostsCommand([
        "app",
        "deploy",
        "site",
        "--image",
        `web@${broken.version}`,
        "--host",
        "host-1",
      ]);
      expect(deployed.code).toBe(1);
      const outcome = deployed.hosts[0] as HostOutcome;
      expect(outcome, deployed.output).toMatchObject({ state: "rollback-failed", generation: before });
      expect(outcome.error?.code).toBe("GILD_ROLLBACK_UNHEALTHY");
      // Why the new one failed (its exit and output), and why the old one did not pass (its probe).
      expect(outcome.reason).toContain("broken release");
      expect(outcome.reason).toMatch(/404/);
      expect(outcome.reason).toMatch(/last lines of/);
      const inst = (await appInstances(fleet, "site")).find((i) => i.host === "host-1");
      expect(inst?.state).toBe("rollback-failed");
      expect(inst?.generation).toBe(before);
    } finally {
      restore();
    }
    // Once it serves again, it is an app like any other.
    await waitFor(
      async () => {
        const inst = (await appInstances(fleet, "site")).find((i) => i.host === "host-1");
        return inst?.state === "running" && inst.health === "healthy";
      },
      { what: "host-1 healthy again, no longer rollback-failed", timeoutMs: 30_000 },
    );
  });

  it("1. a rollout's canary whose local rollback is not healthy: rollback-failed in the rollout, its events, a failed wave", async () => {
    const broken = (await fleet.gildJson<Array<{ version: number }>>(["image", "ls", "web"])).length;
    const restore = breakCurrentGeneration();
    try {
      const started = await fleet.gildJson<{ id: string }>([
        "rollout",
        "start",
        `web@${broken}`,
        "--canary",
        "host-1",
        "--waves",
        "100%",
        "--promote",
        "auto",
        "--min-healthy",
        "1s",
        "--healthy-deadline",
        "8s",
      ]);
      const res = await watchRollout(fleet, started.id, 120_000);
      expect(res.code).toBe(1);
      const view = res.view;
      expect(view.state).toBe("failed");
      const canary = view.waves[0]?.hosts[0];
      expect(canary).toMatchObject({ name: "host-1", state: "rollback-failed" });
      // Its switch failed, its own rollback's generation did not pass its gate, and the rollout's
      // rollback found it off the version but still not serving: whichever the controller saw last.
      expect(canary?.reason).toMatch(/not healthy either|does not pass its health gate/);
      expect(view.reason).toMatch(/canary wave failed/);
      const status = await rolloutStatus(fleet, started.id);
      const events = (status.events ?? []).map((e) => e.message);
      expect(
        events.some((m) => /host-1: [a-z-]+ -> rollback-failed/.test(m)),
        events.join("\n"),
      ).toBe(true);
      expect(
        events.some((m) => /could not be rolled back: host-1/.test(m)),
        events.join("\n"),
      ).toBe(true);
      // Nobody else was switched.
      expect(
        journalEntries(host2.stateDir).filter(
          (e) => e.commandId.startsWith(`${started.id}:`) && e.kind === "deployApp",
        ),
      ).toEqual([]);
    } finally {
      restore();
    }
  });

  it("d. the pool fills up during a pull: GILD_NO_SPACE, the agent keeps running, spool and staging cleaned, nothing promoted", async () => {
    await createBusyboxImage(fleet, "huge", {
      marker: "huge v1",
      payload: { path: "srv/payload.bin", bytes: 128 * MIB },
    });
    const agentPid = host1.pid();
    const fillers = await fillFilesystem(host1.poolPath, 48 * MIB);
    try {
      const pushed = await hostsCommand(["image", "push", "huge@1", "--hosts", "host-1"]);
      expect(pushed.code).toBe(1);
      expect(pushed.hosts[0]?.error?.code, pushed.output).toBe("GILD_NO_SPACE");
      expect(pushed.hosts[0]?.error?.message).toContain("no space");
      // Same agent process: no crash, no restart.
      expect(host1.pid()).toBe(agentPid);
      expect(spool(host1)).toEqual([]);
      expect(staging(host1)).toEqual([]);
      expect(hasImage(host1, "huge", 1)).toBe(false);
      // The apps on the host were not disturbed.
      expect(await fetchPage(host1.url(PORT, "/"))).toContain("site v2");
    } finally {
      for (const file of fillers) rmSync(file, { force: true });
    }
    await run("btrfs", ["filesystem", "sync", host1.poolPath]);
    const again = await hostsCommand(["image", "push", "huge@1", "--hosts", "host-1"]);
    expect(again.code, again.output).toBe(0);
    expect(hasImage(host1, "huge", 1)).toBe(true);
    expect(host1.pid()).toBe(agentPid);
  });
});
