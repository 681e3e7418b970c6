// Fault matrix: a reconnect storm. 1,000 agents (fake ones, speaking the real protocol from this
// process) hold their control sockets to a real `gild controller run`; the controller is stopped, or
// killed, and started again on the same data dir, and every agent reconnects at once with the real
// agent's backoff. What the operator must see: every host online again within 30 s, nobody dropped
// afterwards for a missed pong, hosts and inventories as before, and the controller's memory bounded.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { backoffDelay } from "@gild/agent";
import { ControllerClient } from "@gild/api-client";
import {
  createFleet,
  ensureOpenFileLimit,
  FakeFleet,
  type Fleet,
  joinHostsByApi,
  openFileLimits,
  readProcessUsage,
  UsageSampler,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const HOSTS = 1000;
/** Sockets per side plus what a controller and a test process hold anyway (logs, sqlite, pipes). */
const OPEN_FILES = HOSTS + 1024;
/** The controller pings every agent this often; shorter than the default 20 s so a test sees rounds. */
const HEARTBEAT_MS = 5_000;
const ONLINE_WITHIN_MS = 30_000;
/** Generous: the controller holds 1,000 TLS sockets and their hosts' state; a leak would be far above. */
const RSS_BOUND_BYTES = 512 * 1024 * 1024;
const MIB = 1024 * 1024;
const LABELS = { fault: "storm" };

interface HostView {
  id: string;
  name: string;
  state: string;
  connected: boolean;
  labels: Record<string, string>;
  images: unknown[];
  apps: unknown[];
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(0)} MiB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The controller's JSON log lines after `offset` at `minLevel` or above (pino: 40 warn, 50 error). */
function logLines(file: string, offset: number, minLevel: number): Array<{ level: number; msg: string }> {
  return readFileSync(file)
    .subarray(offset)
    .toString("utf8")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((line) => line.level >= minLevel);
}

/** How many lines carry each message. */
function tally(lines: Array<{ msg: string }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { msg } of lines) counts[msg] = (counts[msg] ?? 0) + 1;
  return counts;
}

/** What must survive a restart: who the hosts are and what they hold. */
const essentials = (hosts: HostView[]) =>
  hosts
    .map((h) => ({ id: h.id, name: h.name, labels: h.labels, images: h.images, apps: h.apps }))
    .sort((a, b) => a.name.localeCompare(b.name));

describeWith(["root", "btrfs", "netns", "open-files"], "fault: a reconnect storm of 1,000 agents", () => {
  let fleet: Fleet;
  let api: ControllerClient | undefined;
  let fake: FakeFleet | undefined;

  const connectedCount = async () =>
    (await api?.call("GET /v1/hosts"))?.hosts.filter((h) => h.connected).length;

  beforeAll(async () => {
    // This process holds one socket per fake agent; the controller, started next, inherits the limit.
    await ensureOpenFileLimit(OPEN_FILES);
    fleet = await createFleet({
      hosts: 0,
      controllerArgs: ["--heartbeat-interval", `${HEARTBEAT_MS}ms`],
    });
    const caPem = readFileSync(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8");
    const token = readFileSync(join(fleet.controllerDataDir, "admin.token"), "utf8").trim();
    api = new ControllerClient({ url: fleet.controllerUrl, caPem, token }, { keepAlive: 16 });
    const names = Array.from({ length: HOSTS }, (_, i) => `storm-${String(i).padStart(4, "0")}`);
    const t0 = Date.now();
    const { joined } = await joinHostsByApi(api, names, { concurrency: 16, labels: LABELS });
    fake = new FakeFleet({
      controllerUrl: fleet.controllerUrl,
      caPem,
      joined,
      startUuid: "00000000-0000-4000-8000-000000000001",
      line: "web",
      startVersion: 1,
      app: "shop",
      labels: LABELS,
      commandDelayMs: [10, 50],
      // Exactly the real agent's reconnect schedule (its defaults: 500 ms base, 60 s cap).
      reconnectDelayMs: (attempt) => backoffDelay(attempt, 500, 60_000),
    });
    await fake.connectAll(100);
    expect(await connectedCount()).toBe(HOSTS);
    process.stdout.write(`${HOSTS} hosts joined and connected in ${seconds(Date.now() - t0)}\n`);
  }, 300_000);

  afterAll(async () => {
    fake?.close();
    api?.close();
    await fleet?.destroy();
  });

  async function storm(how: "stop" | "kill"): Promise<void> {
    const live = fake as FakeFleet;
    const oldPid = fleet.controllerPid() as number;
    const before = readProcessUsage(oldPid);
    const hostsBefore = await fleet.gildJson<HostView[]>(["hosts"]);
    expect(hostsBefore.filter((h) => h.state === "online" && h.connected)).toHaveLength(HOSTS);
    const closesBefore = live.counters.unexpectedCloses;
    const logOffset = statSync(fleet.controllerLogFile).size;

    const t0 = Date.now();
    if (how === "stop") await fleet.stopController();
    else await fleet.killController();
    const restart = Date.now();
    await fleet.startController();
    const up = Date.now();
    const pid = fleet.controllerPid() as number;
    const limit = openFileLimits(pid);
    expect(limit.soft).toBeGreaterThanOrEqual(OPEN_FILES);
    const sampler = new UsageSampler(pid, 100);
    try {
      // Welcome is sent after the controller marked the session online: every host shows online then.
      await live.until(() => live.welcomedCount() === HOSTS, 60_000, "every agent welcomed again");
      const allWelcomed = Date.now();
      const closesAtAllOnline = live.counters.unexpectedCloses;
      expect(await connectedCount()).toBe(HOSTS);
      const apiShowed = Date.now();
      const hostsAfter = await fleet.gildJson<HostView[]>(["hosts"]);
      const shown = Date.now();
      expect(hostsAfter.filter((h) => h.state === "online" && h.connected)).toHaveLength(HOSTS);

      // Every agent has now answered at least one ping of the new controller (a second ping is sent
      // only when the first one's pong came back; a missed one terminates the socket instead).
      await live.until(
        () => live.hosts.every((h) => h.welcomed && h.pings >= 2),
        3 * HEARTBEAT_MS + 30_000,
        "two liveness pings to every agent",
      );
      const end = sampler.stop();
      const warnings = logLines(fleet.controllerLogFile, logOffset, 40);
      const missedPongs = warnings.filter((l) => l.msg.startsWith("agent missed a pong")).length;
      const hwm = end?.peakRssBytes ?? Number.NaN;
      const lines = [
        `controller ${how === "stop" ? "stopped (SIGTERM)" : "killed (SIGKILL)"} and started again with ${HOSTS} agents:`,
        `  old process gone ${seconds(restart - t0)} after the ${how}; the new one answered /healthz ${seconds(up - restart)} after its start; all ${HOSTS} agents welcomed ${seconds(allWelcomed - restart)}, the API showed them online ${seconds(apiShowed - restart)}, gild hosts --json ${seconds(shown - restart)} after the start`,
        `  controller RSS: before ${mib(before?.rssBytes ?? Number.NaN)} (old process, ${HOSTS} connected); new process at start ${mib(sampler.samples[0]?.rssBytes ?? Number.NaN)}, sampled peak ${mib(sampler.max("rssBytes"))}, VmHWM ${mib(hwm)}, after ${mib(end?.rssBytes ?? Number.NaN)}`,
        `  controller open files ${end?.openFds} (limit ${limit.soft}); agent-side closes ${live.counters.unexpectedCloses - closesBefore}, missed pongs in the controller's log ${missedPongs}`,
        `  controller warnings and errors since the ${how}: ${JSON.stringify(tally(warnings))}`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);

      expect(apiShowed - restart).toBeLessThan(ONLINE_WITHIN_MS);
      expect(missedPongs).toBe(0);
      expect(warnings.filter((l) => l.level >= 50)).toEqual([]);
      // Each agent lost its connection once, to the restart, and none after it was back.
      expect(closesAtAllOnline - closesBefore).toBe(HOSTS);
      expect(live.counters.unexpectedCloses).toBe(closesAtAllOnline);
      expect(live.counters.refusals).toBe(0);
      expect(hwm).toBeLessThan(RSS_BOUND_BYTES);
      // Nothing lost: the same hosts, with the same identity, labels and inventory.
      expect(essentials(hostsAfter)).toEqual(essentials(hostsBefore));
    } finally {
      sampler.stop();
    }
  }

  it("brings every agent back within 30 s of a controller stop and start, none dropped, memory bounded", async () => {
    await storm("stop");
  });

  it("does the same after the controller is killed (SIGKILL) and started again", async () => {
    await storm("kill");
  });
});
