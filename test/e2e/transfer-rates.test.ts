// Rate limits keep to their rate: an agent's --max-download-rate, and the controller's
// --transfer-rate-limit, which is per host (a host's transfers share it). Each push's rate is measured
// from what the product reports: the agent's progress events as the push streams them (bytes done, at
// the time each arrived), and the controller's "transfer sent" log line (bytes, ms on the socket).
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { openControllerRequest, type PushEvent } from "@gild/api-client";
import { createBusyboxImage, createFleet, type Fleet, type FleetHost } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";

const MIB = 1024 * 1024;
const CONTROLLER_LIMIT = 6 * MIB;
/** Below the controller's limit, so that on its host the agent's own limit is the one that binds. */
const AGENT_LIMIT = 4 * MIB;
const PAYLOAD_BYTES = 32 * MIB;
/**
 * How far above its limit a measured rate may be: the limiters are ahead by one frame at most
 * (a MiB, or the agent's socket reads), and the progress events' times are when they arrived here.
 */
const BURST_BYTES = 1.5 * MIB;
const OVER_LIMIT = 1.05;
/** How far below: generous, since CI runs the e2e files again with every core busy (stress-ng). */
const UNDER_LIMIT = 0.4;

interface Progress {
  at: number;
  bytes: number;
}

interface TimedPush {
  result: PushEvent;
  /** The progress the agent reported until it had every byte, timed on arrival. */
  progress: Progress[];
}

/** One transfer as the controller logged it when its last byte was flushed. */
interface TransferLine {
  hostId: string;
  artifact: string;
  bytes: number;
  ms: number;
  time: number;
}

let fleetUrl = "";

const rateOf = (bytes: number, ms: number) => bytes / (ms / 1000);
const mibps = (bytesPerSecond: number) => `${(bytesPerSecond / MIB).toFixed(2)} MiB/s`;

describeWith(["root", "btrfs", "netns", "busybox"], "transfer rate limits", () => {
  let fleet: Fleet;
  let limited: FleetHost;
  let free: FleetHost;
  /** The artifact of rate@1 (full), which the second test pushes. */
  let artifactId = "";
  let artifactBytes = 0;

  beforeAll(async () => {
    fleet = await createFleet({
      hosts: 2,
      controllerArgs: ["--transfer-rate-limit", `${CONTROLLER_LIMIT / MIB}MiB`],
      hostAgentArgs: (index) => (index === 1 ? ["--max-download-rate", `${AGENT_LIMIT / MIB}MiB`] : []),
    });
    [limited, free] = fleet.hosts as [FleetHost, FleetHost];
    fleetUrl = fleet.controllerUrl;
    // Random bytes: neither zstd on the pools nor --compressed-data makes the stream smaller.
    for (const [line, bytes] of [
      ["rate", PAYLOAD_BYTES],
      ["pair-a", PAYLOAD_BYTES / 2],
      ["pair-b", PAYLOAD_BYTES / 2],
    ] as const) {
      await createBusyboxImage(fleet, line, {
        marker: `rate limits ${line}`,
        payload: { path: "srv/payload.bin", bytes },
      });
    }
  }, 180_000);

  afterAll(async () => {
    await fleet?.destroy();
  });

  /** Push through the API, timing each progress event as it arrives. */
  async function push(ref: string, host: FleetHost): Promise<TimedPush> {
    const [line, version] = ref.split("@");
    const trust = { caPem: readFileSync(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8") };
    const token = readFileSync(join(fleet.controllerDataDir, "admin.token"), "utf8").trim();
    const res = await openControllerRequest(
      "POST",
      `${fleet.controllerUrl}/v1/images/${line}/${version}/push`,
      { hosts: [host.name] },
      trust,
      { authorization: `Bearer ${token}` },
    );
    const progress: Progress[] = [];
    let pending = "";
    let last: { type: string; result?: { hosts: PushEvent[] } } | undefined;
    const take = (text: string) => {
      const line = JSON.parse(text) as Partial<PushEvent> & { type: string; result?: { hosts: PushEvent[] } };
      // Until the first report of every byte: what follows is the receive, not the download.
      const done = progress.at(-1)?.bytes === line.progress?.bytesTotal;
      if (line.type === "host" && line.progress && !done)
        progress.push({ at: performance.now(), bytes: line.progress.bytesDone });
      last = line;
    };
    for await (const chunk of res) {
      pending += (chunk as Buffer).toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const text of lines) if (text.trim() !== "") take(text);
    }
    if (pending.trim() !== "") take(pending);
    const result = last?.result?.hosts[0];
    expect(last?.type, JSON.stringify(last)).toBe("result");
    expect(result?.state, JSON.stringify(result)).toBe("done");
    return { result: result as PushEvent, progress };
  }

  const hostId = async (host: FleetHost) =>
    (await fleet.hostStatuses()).find((h) => h.name === host.name)?.id as string;

  function transfersLogged(id: string, offset: number): TransferLine[] {
    return readFileSync(fleet.controllerLogFile)
      .subarray(offset)
      .toString("utf8")
      .split("\n")
      .filter((line) => line.includes('"msg":"transfer sent"'))
      .map((line) => JSON.parse(line) as TransferLine)
      .filter((t) => t.hostId === id);
  }

  /**
   * The agent's rate from its progress reports: between the first report with bytes and the last
   * one, and the fastest stretch of at least a second between any two reports (a burst shows there).
   */
  function progressRates(progress: Progress[]): { average: number; fastest: number; spanMs: number } {
    const moving = progress.filter((p) => p.bytes > 0);
    const first = moving[0] as Progress;
    const last = moving.at(-1) as Progress;
    let fastest = 0;
    for (const a of moving)
      for (const b of moving) {
        if (b.at - a.at >= 1000)
          fastest = Math.max(fastest, rateOf(b.bytes - a.bytes - BURST_BYTES, b.at - a.at));
      }
    return {
      average: rateOf(last.bytes - first.bytes, last.at - first.at),
      fastest,
      spanMs: last.at - first.at,
    };
  }

  it("keeps an agent's downloads to its --max-download-rate", async () => {
    const offset = statSync(fleet.controllerLogFile).size;
    const { result, progress } = await push("rate@1", limited);
    const bytes = result.artifact?.sizeBytes ?? 0;
    expect(bytes).toBeGreaterThan(PAYLOAD_BYTES);
    const rates = progressRates(progress);
    const [sent] = transfersLogged(await hostId(limited), offset);
    process.stdout.write(
      `${limited.name} (--max-download-rate ${mibps(AGENT_LIMIT)}): ${(bytes / MIB).toFixed(1)} MiB, ${progress.length} progress reports over ${(rates.spanMs / 1000).toFixed(1)} s: ${mibps(rates.average)} on average, fastest second-long stretch ${mibps(rates.fastest)} (less ${BURST_BYTES / MIB} MiB); controller sent it in ${sent?.ms} ms\n`,
    );
    // Reports come every 0.5 s: a transfer this long gives several.
    expect(progress.filter((p) => p.bytes > 0 && p.bytes < bytes).length).toBeGreaterThanOrEqual(4);
    expect(rates.average).toBeLessThanOrEqual(AGENT_LIMIT * OVER_LIMIT);
    expect(rates.fastest).toBeLessThanOrEqual(AGENT_LIMIT * OVER_LIMIT);
    expect(rates.average).toBeGreaterThanOrEqual(AGENT_LIMIT * UNDER_LIMIT);
  }, 180_000);

  it("keeps a host's transfers to the controller's --transfer-rate-limit", async () => {
    const offset = statSync(fleet.controllerLogFile).size;
    const { result, progress } = await push("rate@1", free);
    const bytes = result.artifact?.sizeBytes ?? 0;
    const [sent] = transfersLogged(await hostId(free), offset) as [TransferLine];
    expect(sent.bytes).toBe(bytes);
    artifactId = result.artifact?.id ?? "";
    artifactBytes = bytes;
    const rates = progressRates(progress);
    process.stdout.write(
      `${free.name} (controller --transfer-rate-limit ${mibps(CONTROLLER_LIMIT)}): controller sent ${(bytes / MIB).toFixed(1)} MiB in ${sent.ms} ms (${mibps(rateOf(bytes, sent.ms))}); agent reported ${mibps(rates.average)} on average, fastest second-long stretch ${mibps(rates.fastest)} (less ${BURST_BYTES / MIB} MiB)\n`,
    );
    // The controller's own clock: the last frame cannot have gone out before its slot.
    expect(rateOf(bytes - BURST_BYTES, sent.ms)).toBeLessThanOrEqual(CONTROLLER_LIMIT * OVER_LIMIT);
    expect(rateOf(bytes, sent.ms)).toBeGreaterThanOrEqual(CONTROLLER_LIMIT * UNDER_LIMIT);
    // ... and what the agent saw arrive.
    expect(rates.average).toBeLessThanOrEqual(CONTROLLER_LIMIT * OVER_LIMIT);
    expect(rates.fastest).toBeLessThanOrEqual(CONTROLLER_LIMIT * OVER_LIMIT);
    expect(rates.average).toBeGreaterThanOrEqual(CONTROLLER_LIMIT * UNDER_LIMIT);
  }, 180_000);

  it("shares the controller's limit among one host's transfers at the same time", async () => {
    // Agents pull one image at a time, so this opens two artifact sockets at once with the host's
    // own credential, each for the last 12 MiB of the artifact the test before pushed.
    const credential = readFileSync(join(free.stateDir, "credential"), "utf8").trim();
    const caPem = readFileSync(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8");
    const offset = statSync(fleet.controllerLogFile).size;
    const from = artifactBytes - 12 * MIB;
    const started = performance.now();
    const reads = await Promise.all([0, 1].map(() => readArtifact(artifactId, from, credential, caPem)));
    const ms = performance.now() - started;
    const bytes = reads.reduce((sum, r) => sum + r, 0);
    expect(reads).toEqual([12 * MIB, 12 * MIB]);
    const transfers = transfersLogged(await hostId(free), offset);
    expect(transfers.map((t) => t.bytes)).toEqual([12 * MIB, 12 * MIB]);
    // On the controller's clock: from the first start to the last end.
    const first = Math.min(...transfers.map((t) => t.time - t.ms));
    const last = Math.max(...transfers.map((t) => t.time));
    process.stdout.write(
      `${free.name}, two transfers at once: ${(bytes / MIB).toFixed(1)} MiB in ${ms.toFixed(0)} ms here (${mibps(rateOf(bytes, ms))}), ${last - first} ms on the controller (each: ${transfers.map((t) => mibps(rateOf(t.bytes, t.ms))).join(", ")})\n`,
    );
    expect(rateOf(bytes - BURST_BYTES, ms)).toBeLessThanOrEqual(CONTROLLER_LIMIT * OVER_LIMIT);
    expect(rateOf(bytes - BURST_BYTES, last - first)).toBeLessThanOrEqual(CONTROLLER_LIMIT * OVER_LIMIT);
    expect(rateOf(bytes, ms)).toBeGreaterThanOrEqual(CONTROLLER_LIMIT * UNDER_LIMIT);
    // They went side by side, each at about half the limit, not one after the other.
    for (const t of transfers) expect(t.ms).toBeGreaterThan((last - first) * 0.7);
  }, 180_000);
});

/** Read an artifact from `offset` on its own socket, as an agent does; resolves with the bytes after the header. */
function readArtifact(id: string, offset: number, credential: string, caPem: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${fleetUrl.replace(/^http/, "ws")}/v1/artifacts/${id}?offset=${offset}`, {
      headers: { authorization: `Bearer ${credential}` },
      ca: caPem,
      perMessageDeflate: false,
      maxPayload: 2 * MIB,
    });
    let header = false;
    let bytes = 0;
    ws.on("message", (data: Buffer) => {
      if (header) bytes += data.length;
      header = true;
    });
    ws.on("error", reject);
    ws.on("close", () => resolve(bytes));
  });
}
