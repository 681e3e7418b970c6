import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  createFleet,
  FAKETIME_LIBRARY,
  type Fleet,
  type FleetHostStatus,
  type FleetState,
  fleetLeftovers,
  readFleetState,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, expect, it } from "vitest";

/** What a fleet made, read from its state file before it is destroyed, to check nothing of it remains. */
function made(fleet: Fleet): FleetState {
  const state = readFleetState(fleet.dir);
  if (!state) throw new Error(`no state file in ${fleet.dir}`);
  return state;
}

async function statusOf(fleet: Fleet, name: string): Promise<FleetHostStatus | undefined> {
  return (await fleet.hostStatuses()).find((h) => h.name === name);
}

describeWith(["root", "btrfs", "netns", "busybox", "faketime"], "the local fleet harness", () => {
  const fleets: Fleet[] = [];
  afterAll(async () => {
    for (const fleet of fleets) await fleet.destroy();
  });

  it("makes hosts that are online on their own addresses, survive an agent crash, and leave nothing behind", async () => {
    // host-1's agent preloads libfaketime (no offset), which leaves files in /dev/shm: the teardown
    // removes those of both its runs, the one killed included.
    const fleet = await createFleet({
      hosts: 2,
      hostAgentEnv: (i): Record<string, string> =>
        i === 1 ? { LD_PRELOAD: FAKETIME_LIBRARY, FAKETIME: "+0" } : {},
    });
    fleets.push(fleet);

    const hosts = await fleet.hostStatuses();
    expect(hosts.map((h) => [h.name, h.state]).sort()).toEqual([
      ["host-1", "online"],
      ["host-2", "online"],
    ]);

    // Each namespace holds its own address, and both hosts can listen on the same port.
    const [one, two] = fleet.hosts;
    if (!one || !two) throw new Error("expected two hosts");
    expect(one.address).not.toBe(two.address);
    const servers = [];
    for (const host of [one, two]) {
      const eth0 = await host.exec(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
      expect(eth0.stdout).toContain(`inet ${host.address}/24`);
      const www = join(fleet.dir, `www-${host.index}`);
      mkdirSync(www);
      writeFileSync(join(www, "index.html"), `hello from ${host.name}\n`);
      const server = host.spawn(["busybox", "httpd", "-f", "-p", "8080", "-h", www]);
      servers.push(server);
    }
    for (const host of [one, two]) {
      const body = await waitFor(
        async () => {
          const res = await fetch(host.url(8080, "/index.html"));
          return res.ok ? res.text() : false;
        },
        { timeoutMs: 10_000, what: `httpd on ${host.name}` },
      );
      expect(body).toBe(`hello from ${host.name}\n`);
    }
    for (const server of servers) {
      const exited = once(server, "exit");
      server.kill("SIGTERM");
      await exited;
    }

    // A crashed agent goes offline, and comes back when started again.
    const crashed = one.pid();
    expect(crashed).toBeTypeOf("number");
    await one.killAgent();
    expect(one.pid()).toBeUndefined();
    await waitFor(async () => (await statusOf(fleet, one.name))?.state === "offline", {
      timeoutMs: 30_000,
      what: `${one.name} offline`,
    });
    await one.startAgent();
    expect(one.pid()).toBeTypeOf("number");
    expect(one.pid()).not.toBe(crashed);
    expect((await statusOf(fleet, one.name))?.state).toBe("online");
    expect((await statusOf(fleet, two.name))?.state).toBe("online");

    const record = made(fleet);
    expect(record.processes.map((p) => p.role).sort()).toEqual([
      "agent:host-1",
      "agent:host-2",
      "controller",
    ]);
    expect(record.sharedMemory).toHaveLength(4);
    for (const file of record.sharedMemory ?? []) expect(existsSync(file)).toBe(true);
    await fleet.destroy();
    await fleet.destroy(); // idempotent
    expect(await fleetLeftovers(record)).toEqual([]);
  });

  it("is undone from its state file alone by another process", async () => {
    const fleet = await createFleet({ hosts: 1 });
    fleets.push(fleet);
    expect((await statusOf(fleet, "host-1"))?.state).toBe("online");
    const record = made(fleet);

    const kit = createRequire(import.meta.url).resolve("@gild/testkit");
    execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { destroyFleetAt } from ${JSON.stringify(kit)}; await destroyFleetAt(process.argv[1]);`,
        fleet.dir,
      ],
      { stdio: ["ignore", "inherit", "inherit"], timeout: 60_000 },
    );
    expect(await fleetLeftovers(record)).toEqual([]);
  });
});
