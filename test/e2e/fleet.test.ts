import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  createFleet,
  type Fleet,
  type FleetHostStatus,
  type ProcessRecord,
  readFleetState,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, expect, it } from "vitest";

/** What a fleet made, read from its state file before it is destroyed, to check nothing of it remains. */
interface Made {
  id: string;
  dir: string;
  processes: ProcessRecord[];
}

function made(fleet: Fleet): Made {
  const state = readFleetState(fleet.dir);
  if (!state) throw new Error(`no state file in ${fleet.dir}`);
  return { id: fleet.id, dir: fleet.dir, processes: state.processes };
}

function stillRunning(pid: number, startTicks: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false; // no such process
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // A zombie is gone for our purpose: this machine's PID 1 does not reap orphans.
  return fields[0] !== "Z" && Number(fields[19]) === startTicks;
}

/** Everything of the fleet that is still there, as readable lines; [] when it was undone completely. */
function leftovers({ id, dir, processes }: Made): string[] {
  const out: string[] = [];
  const sh = (file: string, args: string[]) => execFileSync(file, args, { encoding: "utf8" });
  for (const ns of sh("ip", ["netns", "list"]).split("\n")) {
    if (ns.startsWith(`gild-${id}-`)) out.push(`netns ${ns}`);
  }
  for (const link of sh("ip", ["-o", "link", "show"]).split("\n")) {
    if (link.includes(id)) out.push(`link ${link.split(":")[1]?.trim()}`);
  }
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (mountPoint?.startsWith(`${dir}/`) || mountPoint === dir) out.push(`mount ${mountPoint}`);
  }
  const loops = sh("losetup", ["-J", "-l"]).trim();
  if (loops !== "") {
    const parsed = JSON.parse(loops) as { loopdevices: Array<{ name: string; "back-file"?: string }> };
    for (const loop of parsed.loopdevices) {
      if (loop["back-file"]?.startsWith(`${dir}/`)) out.push(`loop ${loop.name} on ${loop["back-file"]}`);
    }
  }
  for (const p of processes) {
    if (stillRunning(p.pid, p.startTicks)) out.push(`process ${p.role} (pid ${p.pid})`);
  }
  if (existsSync(dir)) out.push(`dir ${dir}`);
  return out;
}

async function statusOf(fleet: Fleet, name: string): Promise<FleetHostStatus | undefined> {
  const result = await fleet.gild(["hosts", "--json"]);
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as FleetHostStatus[]).find((h) => h.name === name);
}

describeWith(["root", "btrfs", "netns", "busybox"], "the local fleet harness", () => {
  const fleets: Fleet[] = [];
  afterAll(async () => {
    for (const fleet of fleets) await fleet.destroy();
  });

  it("makes hosts that are online on their own addresses, survive an agent crash, and leave nothing behind", async () => {
    const fleet = await createFleet({ hosts: 2 });
    fleets.push(fleet);

    const hosts = JSON.parse((await fleet.gild(["hosts", "--json"])).stdout) as FleetHostStatus[];
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
    await fleet.destroy();
    await fleet.destroy(); // idempotent
    expect(leftovers(record)).toEqual([]);
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
    expect(leftovers(record)).toEqual([]);
  });
});
