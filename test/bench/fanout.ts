// Peer fan-out (issue 14), `pnpm bench:fanout` (its own script: a fleet of 8 with shaped links does not
// fit the one-host `pnpm bench:transfer`). 8 hosts of the namespaced fleet with --peer-listen; every
// link shaped to BENCH_LINK_MBIT (default 100) Mbit/s each way with tc (tbf): each host's veth (its
// download) and its eth0 inside the namespace (its upload), and the fleet bridge, which carries all the
// controller sends. Per run: one host's full transfer of the image, then the same image to all 8.
// Prints, as medians over BENCH_RUNS: the time to all 8 over one host's time (target <= 1 + log2 8 = 4)
// and the bytes the controller sent over the artifact's size (target <= 2), with how busy the machine's
// CPUs were (the fleet shares them: a fan-out can wait on CPU, not links). BENCH_IMAGE_MIB sizes the
// image (default 256). Namespaces, qdiscs, mounts, loop devices and processes go even on failure.
import { readFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { openControllerRequest, type PushEvent, readBody } from "@gild/api-client";
import { buildBusyboxRoot, createFleet, type Fleet, readFleetState, run, waitFor } from "@gild/testkit";
import { coldCaches, writePayload } from "./machine.js";
import { fmt, median } from "./stats.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 256);
const LINK_MBIT = Number(process.env.BENCH_LINK_MBIT ?? 100);
const HOSTS = 8;
const cpus = () => availableParallelism();
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const PEER_PORT = 7744;
const LINE = "fanout";

interface Trust {
  caPem: string;
  authorization: string;
}

async function trustOf(fleet: Fleet): Promise<Trust> {
  const caPem = await readFile(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8");
  const token = (await readFile(join(fleet.controllerDataDir, "admin.token"), "utf8")).trim();
  return { caPem, authorization: `Bearer ${token}` };
}

/** Push `ref` to `hosts` through the controller's API; every host must end done. */
async function push(fleet: Fleet, ref: string, hosts: string[]): Promise<PushEvent[]> {
  const [line, version] = ref.split("@");
  const trust = await trustOf(fleet);
  const res = await openControllerRequest(
    "POST",
    `${fleet.controllerUrl}/v1/images/${line}/${version}/push`,
    { hosts },
    { caPem: trust.caPem },
    { authorization: trust.authorization },
  );
  const lines = (await readBody(res)).split("\n").filter((l) => l.trim() !== "");
  const last = JSON.parse(lines[lines.length - 1] ?? "{}") as {
    type?: string;
    result?: { hosts: PushEvent[] };
  };
  const results = last.result?.hosts ?? [];
  if (last.type !== "result" || results.length !== hosts.length || results.some((r) => r.state !== "done"))
    throw new Error(`push ${ref} to ${hosts.join(",")}: ${JSON.stringify(last).slice(0, 2000)}`);
  return results;
}

/** The controller's own count of artifact bytes it sent for the line (GET /metrics; 0 before any). */
async function controllerSent(fleet: Fleet): Promise<number> {
  const trust = await trustOf(fleet);
  const res = await openControllerRequest(
    "GET",
    `${fleet.controllerUrl}/metrics`,
    undefined,
    { caPem: trust.caPem },
    { authorization: trust.authorization },
  );
  const prefix = `gild_artifact_sent_bytes_total{line="${LINE}"} `;
  const line = (await readBody(res)).split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(prefix.length));
}

/** tc devices shaped by this run, as [netns or null, device], so that they are unshaped at the end. */
type Shaped = Array<[string | null, string]>;

async function shape(shaped: Shaped, netns: string | null, dev: string): Promise<void> {
  // tbf: one rate for everything the device sends; 100 ms of queue, a burst of a few full frames.
  const args = ["qdisc", "replace", "dev", dev, "root", "tbf", "rate", `${LINK_MBIT}mbit`];
  const opts = ["burst", "64kb", "latency", "100ms"];
  await run("tc", netns === null ? [...args, ...opts] : ["-n", netns, ...args, ...opts]);
  shaped.push([netns, dev]);
}

async function unshape(shaped: Shaped): Promise<void> {
  for (const [netns, dev] of shaped.reverse()) {
    const args = ["qdisc", "del", "dev", dev, "root"];
    // A device already gone took its qdisc with it: report what failed, go on with the rest.
    await run("tc", netns === null ? args : ["-n", netns, ...args]).catch((err: Error) =>
      process.stderr.write(`unshaping ${netns ?? "root"}/${dev}: ${err.message.split("\n")[0]}\n`),
    );
  }
}

/**
 * Forget every transfer tree (PeerSourcing lives in the controller's memory) so that each measured
 * push starts with no holder: the hosts' peer caches still hold the artifact, but nobody is named.
 */
async function freshTransferState(fleet: Fleet): Promise<void> {
  await fleet.stopController();
  await fleet.startController();
  // Connected, not "online": a restarted controller shows the state it stored until an agent is back,
  // and a host not connected yet when the pulls are planned serves nobody (the tree thins out).
  await waitFor(
    async () => {
      const hosts = await fleet.hostStatuses();
      return hosts.length === HOSTS && hosts.every((h) => h.connected === true);
    },
    { what: "every agent connected to the restarted controller", timeoutMs: 60_000 },
  );
}

async function evict(fleet: Fleet, hosts: string[]): Promise<void> {
  const res = await fleet.gild(["image", "rm", `${LINE}@1`, "--hosts", hosts.join(",")], {
    timeoutMs: 120_000,
  });
  if (res.code !== 0) throw new Error(`evict from ${hosts.join(",")}: ${res.stderr}`);
}

/** Busy and total jiffies of all CPUs so far (/proc/stat): the fleet shares this machine's cores. */
function cpuJiffies(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  // Not busy: idle and iowait.
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/**
 * Seconds of one measured push from cold caches, the controller's bytes sent during it, and how busy
 * the machine's CPUs were meanwhile (8 agents, the controller and their btrfs receives share them).
 */
async function measure(
  fleet: Fleet,
  hosts: string[],
): Promise<{ seconds: number; sent: number; fromPeers: number; cpuBusy: number }> {
  await freshTransferState(fleet);
  await coldCaches();
  const sent0 = await controllerSent(fleet);
  const cpu0 = cpuJiffies();
  const t0 = performance.now();
  const results = await push(fleet, `${LINE}@1`, hosts);
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuJiffies();
  const cpuBusy = (cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total);
  const sent = (await controllerSent(fleet)) - sent0;
  const fromPeers = results.reduce((n, r) => n + (r.bytesFromPeers ?? 0), 0);
  const bad = results.flatMap((r) => r.badPeers ?? []);
  if (bad.length > 0) throw new Error(`bad peers in a clean run: ${JSON.stringify(bad)}`);
  await evict(fleet, hosts);
  return { seconds, sent, fromPeers, cpuBusy };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("bench:fanout needs root (namespaces, tc, loop devices, btrfs)");
  const fleet = await createFleet({
    hosts: HOSTS,
    poolSizeMiB: IMAGE_MIB * 4 + 1024,
    controllerPoolSizeMiB: IMAGE_MIB * 4 + 2048,
    hostAgentArgs: (_index, address) => ["--peer-listen", `${address}:${PEER_PORT}`],
  });
  const shaped: Shaped = [];
  try {
    const names = fleet.hosts.map((h) => h.name);
    process.stdout.write(`generating a ${IMAGE_MIB} MiB image on the controller ...\n`);
    const tree = join(fleet.controllerPool, "..", "fanout-tree");
    await buildBusyboxRoot(tree, { marker: "fanout" });
    await writePayload(tree, IMAGE_MIB);
    await fleet.gildJson(["image", "create", LINE, "--from-dir", tree]);
    await rm(tree, { recursive: true, force: true });
    // The artifact is made on the first push: made before the shaping, and not part of any measure.
    const first = await push(fleet, `${LINE}@1`, ["host-1"]);
    await evict(fleet, ["host-1"]);
    const size = first[0]?.artifact?.sizeBytes ?? Number.NaN;

    const state = readFleetState(fleet.dir);
    if (!state?.bridge) throw new Error(`no fleet state with a bridge in ${fleet.dir}`);
    await shape(shaped, null, state.bridge);
    for (const host of state.hosts) {
      await shape(shaped, null, host.veth);
      await shape(shaped, host.netns, "eth0");
    }
    process.stdout.write(
      `links shaped to ${LINK_MBIT} Mbit/s (${shaped.length} qdiscs); artifact ${(size / 1024 ** 2).toFixed(1)} MiB\n`,
    );

    const one: number[] = [];
    const all: number[] = [];
    const sentCopies: number[] = [];
    const peerCopies: number[] = [];
    const busy: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const solo = await measure(fleet, ["host-1"]);
      const wide = await measure(fleet, names);
      one.push(solo.seconds);
      all.push(wide.seconds);
      sentCopies.push(wide.sent / size);
      peerCopies.push(wide.fromPeers / size);
      busy.push(wide.cpuBusy);
      process.stdout.write(
        `run ${i + 1}: one host ${fmt(solo.seconds, 2)} s (${fmt(size / 1024 ** 2 / solo.seconds, 1)} MiB/s, controller sent ${fmt(solo.sent / size, 2)} copies, CPUs ${pct(solo.cpuBusy)} busy); ` +
          `all ${HOSTS} ${fmt(wide.seconds, 2)} s, controller sent ${fmt(wide.sent / size, 2)} copies, peers ${fmt(wide.fromPeers / size, 2)}, CPUs ${pct(wide.cpuBusy)} busy\n`,
      );
    }
    const ratio = median(all) / median(one);
    const copies = median(sentCopies);
    process.stdout.write(
      `\nfan-out to ${HOSTS} hosts, ${LINK_MBIT} Mbit/s links, ${(size / 1024 ** 2).toFixed(1)} MiB artifact (medians of ${RUNS} runs)\n` +
        `  one host ${fmt(median(one), 2)} s, all ${HOSTS} ${fmt(median(all), 2)} s; peers carried ${fmt(median(peerCopies), 2)} copies; CPUs busy ${pct(median(busy))} of ${cpus()} during the fan-out\n` +
        `  time to all ${HOSTS} / one host             ${fmt(ratio, 2).padStart(6)}x   target <= 4x   ${ratio <= 4 ? "met" : "MISSED"}\n` +
        `  controller bytes sent / artifact size  ${fmt(copies, 2).padStart(6)}x   target <= 2x   ${copies <= 2 ? "met" : "MISSED"}\n`,
    );
  } finally {
    await unshape(shaped);
    await fleet.destroy();
  }
}

await main();
