import { readdirSync, readFileSync, readlinkSync, statfsSync } from "node:fs";
import { join } from "node:path";
import {
  appInstances,
  busyboxServeShellCommand,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  type Fleet,
  fetchPage,
  readStartsLog,
  run,
  updateImage,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

interface DeployEvent {
  host: string;
  state: string;
  generation?: number;
  reason?: string;
  error?: { code: string; message: string };
}

const PORT = 8080;

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "apps on hosts", () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await createFleet({ hosts: 2 });
    await createBusyboxImage(fleet, "web", {
      marker: "app v1",
      // Some weight, so that a copy would show in the disk usage and a snapshot would not.
      payload: { path: "srv/runtime.bin", bytes: 48 * 1024 * 1024 },
    });
    await updateImage(fleet, "web", "sed -i 's/app v1/app v2/g' /www/index.html");
    await updateImage(
      fleet,
      "web",
      "printf '#!/bin/sh\\necho \"broken build: no php today\" >&2\\nexit 3\\n' > /usr/local/bin/serve",
    );
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  const page = (hostIndex: number): Promise<string> =>
    fetchPage(fleet.hosts[hostIndex]?.url(PORT, "/") as string, 2000);

  const deploy = async (args: string[]) => {
    const res = await fleet.gild(["app", "deploy", ...args, "--json"], { timeoutMs: 120_000 });
    return { code: res.code, stderr: res.stderr, events: JSON.parse(res.stdout || "[]") as DeployEvent[] };
  };

  const startsLog = (hostIndex: number) => readStartsLog(fleet.hosts[hostIndex]?.poolPath as string, "blog");

  it("defines an app from flags, validated as a whole", async () => {
    const bad = await fleet.gild([
      "app",
      "create",
      "Bad_Name",
      "--image",
      "web",
      "--hosts",
      "nowhere",
      "--port",
      "99999",
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("GILD_INVALID_SPEC");
    expect(bad.stderr).toMatch(/name:/);
    expect(bad.stderr).toMatch(/port:/);
    await createBusyboxApp(fleet, {
      app: "blog",
      hosts: fleet.hosts.map((h) => h.name).join(","),
      port: PORT,
      publish: true,
      minHealthy: "1s",
      healthyDeadline: "15s",
      stopTimeout: "5s",
    });
  });

  it("deploys v1, serves it over HTTP, then switches to v2", async () => {
    const first = await deploy(["blog", "--image", "web@1"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.events.map((e) => e.state)).toEqual(["done", "done"]);
    // Its health gate held it healthy for --min-healthy (1s) before the deploy answered: the inventory
    // says so at once, not "healthy for 0ms" (the agent's monitor goes on from the gate's streak).
    const justDeployed = Date.now();
    for (const inst of await appInstances(fleet, "blog")) {
      expect(inst.health, inst.host).toBe("healthy");
      expect(justDeployed - (inst.healthSince as number), inst.host).toBeGreaterThanOrEqual(900);
    }
    expect(await page(0)).toContain("app v1");
    expect(await page(1)).toContain("app v1");
    const second = await deploy(["blog", "--image", "web@2"]);
    expect(second.code, second.stderr).toBe(0);
    expect(await page(0)).toContain("app v2");
    expect(await page(1)).toContain("app v2");
    await waitFor(
      async () =>
        (await appInstances(fleet, "blog")).every(
          (i) => i.imageVersion === 2 && i.health === "healthy" && i.previousGeneration > 0,
        ),
      {
        what: "inventory showing v2 healthy with a previous generation",
      },
    );
    // The generation's root is a writable snapshot of the image, never a copy.
    const host = fleet.hosts[0] as Fleet["hosts"][number];
    const gen = readlinkSync(join(host.poolPath, "apps", "blog", "current"));
    const show = (await run("btrfs", ["subvolume", "show", join(host.poolPath, "apps", "blog", gen)])).stdout;
    const image = (
      await run("btrfs", ["subvolume", "show", join(host.poolPath, "images", "web", "2", "rootfs")])
    ).stdout;
    expect(/Parent UUID:\s+(\S+)/.exec(show)?.[1]).toBe(/^\s*UUID:\s+(\S+)/m.exec(image)?.[1]);
  });

  it("rolls back locally when v3 exits at start, keeps serving v2, and reports why", async () => {
    const linesBefore = startsLog(0).length;
    const bad = await deploy(["blog", "--image", "web@3", "--host", "host-1"]);
    expect(bad.code).toBe(1);
    const event = bad.events[0] as DeployEvent;
    expect(event.state).toBe("rolled-back");
    expect(event.error?.code).toBe("GILD_HEALTH_FAILED");
    expect(event.reason).toContain("exit");
    expect(event.reason).toContain("broken build: no php today");
    expect(await page(0)).toContain("app v2");
    const [inst] = (await appInstances(fleet, "blog")).filter((i) => i.host === "host-1");
    expect(inst?.imageVersion).toBe(2);
    // The app's own data survived: every earlier line is still there, and v2 started once more.
    const lines = startsLog(0);
    expect(lines.length).toBe(linesBefore + 1);
    const logs = await fleet.gild(["app", "logs", "blog", "--host", "host-1"]);
    expect(logs.stdout).toContain("serve: listening");
  });

  it("rolls back to the previous generation on request, without a download, keeping the data", async () => {
    const before = startsLog(1);
    const res = await fleet.gild(["app", "rollback", "blog", "--host", "host-2", "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(await page(1)).toContain("app v1");
    const after = startsLog(1);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.length).toBe(before.length + 1);
    // Forward again for the next tests.
    expect((await deploy(["blog", "--image", "web@2", "--host", "host-2"])).code).toBe(0);
  });

  it("re-adopts running apps after the agent is killed with -9, without restarting them", async () => {
    const host = fleet.hosts[0] as Fleet["hosts"][number];
    const lines = startsLog(0).length;
    await host.killAgent();
    expect(await page(0)).toContain("app v2");
    await host.startAgent();
    await waitFor(
      async () => (await appInstances(fleet, "blog")).find((i) => i.host === host.name)?.health === "healthy",
      {
        what: "health reported by the restarted agent",
      },
    );
    expect(startsLog(0).length).toBe(lines);
    expect(await page(0)).toContain("app v2");
  });

  it("runs two apps on one host from one image as snapshots: far less disk than the image", async () => {
    const host = fleet.hosts[1] as Fleet["hosts"][number];
    const free = () => {
      const s = statfsSync(host.poolPath);
      return s.bavail * s.bsize;
    };
    await run("btrfs", ["filesystem", "sync", host.poolPath]);
    const before = free();
    await fleet.gildJson([
      "app",
      "create",
      "shop",
      "--image",
      "web",
      "--hosts",
      host.name,
      "--cmd",
      busyboxServeShellCommand(8081, "/srv/data"),
      "--data",
      "/srv/data",
      "--health",
      "tcp://127.0.0.1:8081",
      "--min-healthy",
      "500ms",
    ]);
    expect((await deploy(["shop", "--image", "web@2"])).code).toBe(0);
    await run("btrfs", ["filesystem", "sync", host.poolPath]);
    const used = before - free();
    expect(used).toBeLessThan(8 * 1024 * 1024);
    const res = await fetch(host.url(8081, "/"), { signal: AbortSignal.timeout(2000) });
    expect(await res.text()).toContain("app v2");
  });

  it("stops an app that ignores SIGTERM after its stop timeout, leaving nothing running", async () => {
    const host = fleet.hosts[0] as Fleet["hosts"][number];
    await fleet.gildJson([
      "app",
      "create",
      "stubborn",
      "--image",
      "web",
      "--hosts",
      host.name,
      "--cmd",
      "trap '' TERM; exec /bin/httpd -f -p 8082 -h /www",
      "--health",
      "tcp://127.0.0.1:8082",
      "--min-healthy",
      "300ms",
      "--stop-timeout",
      "2s",
    ]);
    expect((await deploy(["stubborn", "--image", "web@2"])).code).toBe(0);
    // Every process of the container carries the app's name in its environment (GILD_APP).
    const processesInside = () =>
      readdirSync("/proc")
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readFileSync(`/proc/${p}/environ`, "latin1").split("\0").includes("GILD_APP=stubborn");
          } catch {
            return false;
          }
        });
    expect(processesInside().length).toBeGreaterThan(0);
    const started = Date.now();
    const res = await fleet.gild(["app", "rm", "stubborn", "--json"]);
    const took = Date.now() - started;
    expect(res.code, res.stderr).toBe(0);
    expect(took).toBeGreaterThanOrEqual(2000);
    expect(took).toBeLessThan(15_000);
    expect(processesInside()).toEqual([]);
  });
});
