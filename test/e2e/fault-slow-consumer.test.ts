// Fault matrix: a slow consumer. One real agent reads its artifact at 1 MiB/s (--max-download-rate);
// while it downloads a large incompressible image, the controller must not buffer what that agent has
// not read yet (its RSS grows by less than 64 MiB), and another agent's transfer of the same artifact
// at the same time must not be slowed to the slow one's pace. Both end with the image, intact.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  createBusyboxImage,
  createFleet,
  type Fleet,
  type FleetHost,
  readProcessUsage,
  treeDigest,
  UsageSampler,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const MIB = 1024 * 1024;
// Large enough that a controller buffering for the slow reader would show it at once (it would read
// the whole file ahead), small enough that the slow reader finishes in under a minute.
const PAYLOAD_BYTES = 48 * MIB;
const SLOW_RATE = "1MiB";
const RSS_GROWTH_BOUND = 64 * MIB;
/** The concurrent transfer keeps at least this share of its solo rate (2 noisy, maybe saturated cores). */
const MIN_SHARE_OF_SOLO_RATE = 0.25;

interface PushResult {
  host: string;
  state: string;
  artifact?: { id: string; sizeBytes: number };
  bytesTransferred?: number;
  error?: { code: string; message: string };
}

/** One transfer as the controller logged it when its last byte was flushed ("transfer sent"). */
interface TransferLine {
  hostId: string;
  artifact: string;
  bytes: number;
  ms: number;
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;
const rate = (bytes: number, ms: number) => `${(bytes / MIB / (ms / 1000)).toFixed(1)} MiB/s`;

describeWith(["root", "btrfs", "netns", "busybox"], "fault: a slow consumer among fast ones", () => {
  let fleet: Fleet;
  let slow: FleetHost;
  let fast: FleetHost;
  let artifactBytes = 0;
  let soloTransfer: TransferLine;

  beforeAll(async () => {
    fleet = await createFleet({
      hosts: 2,
      hostAgentArgs: (index) => (index === 1 ? ["--max-download-rate", SLOW_RATE] : []),
    });
    [slow, fast] = fleet.hosts as [FleetHost, FleetHost];
    // Random bytes: neither zstd on the pools nor --compressed-data makes the stream smaller.
    await createBusyboxImage(fleet, "big", {
      marker: "slow consumer",
      payload: { path: "srv/payload.bin", bytes: PAYLOAD_BYTES },
    });
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  async function push(host: FleetHost): Promise<PushResult & { ms: number }> {
    const t0 = Date.now();
    const res = await fleet.gild(["image", "push", "big@1", "--hosts", host.name, "--json"], {
      timeoutMs: 300_000,
    });
    const results = JSON.parse(res.stdout.trim() || "[]") as PushResult[];
    expect(res.code, `${res.stderr}${res.stdout}`).toBe(0);
    return { ...(results[0] as PushResult), ms: Date.now() - t0 };
  }

  const hostId = async (host: FleetHost) =>
    (await fleet.hostStatuses()).find((h) => h.name === host.name)?.id as string;

  /** The controller's "transfer sent" lines for a host, after a byte offset of its log. */
  function transfersLogged(id: string, offset: number): TransferLine[] {
    return readFileSync(fleet.controllerLogFile)
      .subarray(offset)
      .toString("utf8")
      .split("\n")
      .filter((line) => line.includes('"msg":"transfer sent"'))
      .map((line) => JSON.parse(line) as TransferLine)
      .filter((t) => t.hostId === id);
  }

  /** Bytes a host has downloaded of the artifact so far (its resumable spool file). */
  function spooled(host: FleetHost): number {
    const dir = join(host.poolPath, ".spool");
    if (!existsSync(dir)) return 0;
    return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
  }

  /** Free the fast host's copy, so that it receives the same artifact again. */
  async function evict(host: FleetHost): Promise<void> {
    const removed = await fleet.gild(["image", "rm", "big@1", "--hosts", host.name]);
    expect(removed.code, removed.stderr).toBe(0);
  }

  it("measures the fast agent's transfer alone", async () => {
    // A first transfer warms what the measured ones share (page cache, JIT, the pool's allocator).
    expect((await push(fast)).state).toBe("done");
    await evict(fast);
    const offset = statSync(fleet.controllerLogFile).size;
    const solo = await push(fast);
    expect(solo.state).toBe("done");
    artifactBytes = solo.artifact?.sizeBytes ?? 0;
    expect(artifactBytes).toBeGreaterThan(PAYLOAD_BYTES);
    [soloTransfer] = transfersLogged(await hostId(fast), offset) as [TransferLine];
    expect(soloTransfer.bytes).toBe(artifactBytes);
    process.stdout.write(
      `solo: ${mib(artifactBytes)} to ${fast.name} in ${soloTransfer.ms} ms on the wire (${rate(artifactBytes, soloTransfer.ms)}), push ${solo.ms} ms end to end\n`,
    );
    await evict(fast);
  });

  it("serves a 1 MiB/s reader without buffering for it, and without slowing another reader", async () => {
    const pid = fleet.controllerPid() as number;
    const baseline = readProcessUsage(pid)?.rssBytes as number;
    const sampler = new UsageSampler(pid, 100);
    const offset = statSync(fleet.controllerLogFile).size;
    try {
      const slowPush = push(slow);
      // The slow transfer is under way before the fast one starts.
      await waitFor(() => spooled(slow) >= 2 * MIB, { timeoutMs: 60_000, what: `${slow.name} downloading` });
      const concurrent = await push(fast);
      const slowDoneAtFastEnd = spooled(slow);
      const grownWhileBoth = sampler.max("rssBytes") - baseline;
      expect(concurrent.state).toBe("done");
      const [fastTransfer] = transfersLogged(await hostId(fast), offset) as [TransferLine];
      process.stdout.write(
        `with a ${SLOW_RATE}/s reader: ${fast.name} got ${mib(fastTransfer.bytes)} in ${fastTransfer.ms} ms on the wire (${rate(fastTransfer.bytes, fastTransfer.ms)}; solo ${rate(soloTransfer.bytes, soloTransfer.ms)}), push ${concurrent.ms} ms end to end; ${slow.name} had ${mib(slowDoneAtFastEnd)} of ${mib(artifactBytes)} then\n`,
      );

      const slowResult = await slowPush;
      const end = sampler.stop();
      const grown = sampler.max("rssBytes") - baseline;
      const [slowTransfer] = transfersLogged(await hostId(slow), offset) as [TransferLine];
      const cpuSeconds = (end?.cpuSeconds ?? Number.NaN) - (sampler.samples[0]?.cpuSeconds ?? Number.NaN);
      process.stdout.write(
        `slow: ${mib(slowTransfer.bytes)} to ${slow.name} in ${(slowTransfer.ms / 1000).toFixed(1)} s (${rate(slowTransfer.bytes, slowTransfer.ms)}); controller RSS before ${mib(baseline)}, peak ${mib(sampler.max("rssBytes"))} (+${mib(grown)}; +${mib(grownWhileBoth)} while both ran), after ${mib(end?.rssBytes ?? Number.NaN)}; controller CPU ${cpuSeconds.toFixed(1)} s in all\n`,
      );

      // The fast one was not held to the slow one's pace: it finished long before, at a good share of
      // its solo rate (a wide margin: CI runs this again with every core busy).
      expect(slowDoneAtFastEnd).toBeLessThan(artifactBytes / 2);
      expect(fastTransfer.bytes).toBe(artifactBytes);
      expect(fastTransfer.bytes / fastTransfer.ms).toBeGreaterThan(
        (MIN_SHARE_OF_SOLO_RATE * soloTransfer.bytes) / soloTransfer.ms,
      );
      // The controller held no more than a few frames per socket, not the slow one's backlog.
      expect(grown).toBeLessThan(RSS_GROWTH_BOUND);

      // Nothing lost: the slow one got every byte, and both hosts hold the controller's tree.
      expect(slowResult.state).toBe("done");
      expect(slowResult.bytesTransferred).toBe(artifactBytes);
      // The reader kept to its rate. Measured on its side: the controller's "on the wire" time ends
      // when the last frame is in the socket buffers, megabytes before the agent has read it.
      expect(slowResult.ms).toBeGreaterThanOrEqual((artifactBytes / MIB) * 1000 - 5);
      const source = await treeDigest(join(fleet.controllerPool, "images", "big", "1", "rootfs"));
      for (const host of [slow, fast])
        expect(await treeDigest(join(host.poolPath, "images", "big", "1", "rootfs"))).toEqual(source);
      const listed = await fleet.gildJson<Array<{ version: number; hosts: string[] }>>([
        "image",
        "ls",
        "big",
        "--hosts",
      ]);
      expect(listed.find((i) => i.version === 1)?.hosts.sort()).toEqual([slow.name, fast.name].sort());
    } finally {
      sampler.stop();
    }
  }, 300_000);
});
