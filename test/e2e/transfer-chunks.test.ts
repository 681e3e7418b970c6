// Pipelined, chunk-verified transfers (issue 14): `btrfs receive` runs while the artifact downloads
// and is fed a chunk only once it matched its signed sha256. Damaged, foreign and truncated chunks
// on the controller, cuts at and between chunk boundaries, a receive killed mid-stream and an agent
// killed mid-transfer, with real agents, real sockets and real btrfs.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { open, truncate } from "node:fs/promises";
import { join } from "node:path";
import { chunkSizeFor } from "@gild/protocol";
import {
  createBusyboxImage,
  createFleet,
  descendantProcesses,
  type Fleet,
  type FleetHost,
  processAlive,
  treeDigest,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const MIB = 1024 * 1024;

interface PushResult {
  host: string;
  state: string;
  artifact?: { id: string; sizeBytes: number };
  error?: { code: string; message: string };
  resumedFrom?: number;
  bytesTransferred?: number;
}

/** A line of a pino log (controller or agent), the fields these tests read. */
interface LogLine {
  msg: string;
  hostId?: string;
  artifact?: string;
  bytes?: number;
  receiveFed?: number;
  spooled?: number;
}

function logLines(file: string, fromByte: number): LogLine[] {
  return readFileSync(file)
    .subarray(fromByte)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

describeWith(["root", "btrfs", "netns", "busybox"], "pipelined, chunk-verified transfers", () => {
  let fleet: Fleet;
  let host1: FleetHost;
  let host2: FleetHost;
  /** The controller's artifact files of big@1 and other@1 (full streams). */
  let bigFile: string;
  let otherFile: string;
  let size: number;
  let chunk: number;

  beforeAll(async () => {
    // Slow enough downloads (16 chunks of 4 MiB in about 4 s) that a test can act mid-transfer.
    fleet = await createFleet({ hosts: 2, agentArgs: ["--max-download-rate", "16MiB"] });
    [host1, host2] = fleet.hosts as [FleetHost, FleetHost];
    const artifacts = join(fleet.controllerDataDir, "artifacts");
    const streams = () =>
      new Set(existsSync(artifacts) ? readdirSync(artifacts).filter((n) => n.endsWith(".stream")) : []);
    const before = streams();
    await createBusyboxImage(fleet, "big", {
      marker: "big v1",
      payload: { path: "srv/payload.bin", bytes: 64 * MIB },
    });
    const madeBig = [...streams()].filter((n) => !before.has(n));
    expect(madeBig.length).toBe(1);
    bigFile = join(artifacts, madeBig[0] as string);
    await createBusyboxImage(fleet, "other", {
      marker: "other v1",
      payload: { path: "srv/payload.bin", bytes: 20 * MIB },
    });
    const madeOther = [...streams()].filter((n) => !before.has(n) && join(artifacts, n) !== bigFile);
    expect(madeOther.length).toBe(1);
    otherFile = join(artifacts, madeOther[0] as string);
    size = statSync(bigFile).size;
    chunk = chunkSizeFor(size);
    expect(size).toBeGreaterThan(14 * chunk);
  });

  afterAll(async () => {
    await fleet?.destroy();
  });

  async function push(ref: string, host: FleetHost): Promise<PushResult & { output: string }> {
    const res = await fleet.gild(["image", "push", ref, "--hosts", host.name, "--json"], {
      timeoutMs: 240_000,
    });
    const parsed = JSON.parse(res.stdout.trim() || "[]") as PushResult[] | { error: unknown };
    const result = (Array.isArray(parsed) ? parsed[0] : undefined) ?? { host: host.name, state: "none" };
    return { ...result, output: `${res.stderr}${res.stdout}` };
  }

  async function evict(ref: string, host: FleetHost): Promise<void> {
    const res = await fleet.gild(["image", "rm", ref, "--hosts", host.name]);
    expect(res.code, res.stderr).toBe(0);
  }

  const hasImage = (host: FleetHost, line: string) =>
    existsSync(join(host.poolPath, "images", line, "1", "rootfs"));
  const staging = (host: FleetHost) => readdirSync(join(host.poolPath, ".staging"));
  const spoolDir = (host: FleetHost) => join(host.poolPath, ".spool");
  const spooled = (host: FleetHost) =>
    readdirSync(spoolDir(host)).reduce((sum, n) => sum + statSync(join(spoolDir(host), n)).size, 0);
  const hostId = async (host: FleetHost) =>
    (await fleet.hostStatuses()).find((h) => h.name === host.name)?.id as string;

  /** Bytes the controller sent a host of an artifact since a point of its log, every socket counted. */
  function controllerSent(id: string, artifact: string, fromByte: number): number {
    return logLines(fleet.controllerLogFile, fromByte)
      .filter((l) => l.msg === "transfer sent" || l.msg === "transfer cut by the peer")
      .filter((l) => l.hostId === id && l.artifact === artifact)
      .reduce((sum, l) => sum + (l.bytes ?? 0), 0);
  }

  async function expectIntact(host: FleetHost, line: string): Promise<void> {
    expect(await treeDigest(join(host.poolPath, "images", line, "1", "rootfs"))).toEqual(
      await treeDigest(join(fleet.controllerPool, "images", line, "1", "rootfs")),
    );
    expect(staging(host)).toEqual([]);
    expect(readdirSync(spoolDir(host))).toEqual([]);
  }

  /** Overwrite `bytes` of the controller's artifact file at `position`. */
  async function overwrite(file: string, position: number, bytes: Buffer): Promise<void> {
    const handle = await open(file, "r+");
    try {
      await handle.write(bytes, 0, bytes.length, position);
    } finally {
      await handle.close();
    }
  }

  /** A refused pull: nothing promoted, no half-received tree, the spool cut after the last good chunk. */
  function expectRefusedAt(host: FleetHost, badChunk: number, agentLogFrom: number): void {
    expect(hasImage(host, "big")).toBe(false);
    expect(staging(host)).toEqual([]);
    expect(spooled(host)).toBe(badChunk * chunk);
    // What `btrfs receive` was given: the verified chunks before the bad one, not a byte more.
    const failed = logLines(host.logFile, agentLogFrom).filter(
      (l) => l.msg === "pull failed; its receive stopped",
    );
    expect(failed.length).toBe(1);
    expect(failed[0]?.receiveFed).toBeLessThanOrEqual(badChunk * chunk);
    expect(failed[0]?.spooled).toBe(badChunk * chunk);
  }

  it("refuses a chunk with a flipped byte at that chunk: receive saw only the chunks before it", async () => {
    const original = Buffer.alloc(1);
    const handle = await open(bigFile, "r");
    await handle.read(original, 0, 1, 5 * chunk + 1000);
    await handle.close();
    await overwrite(bigFile, 5 * chunk + 1000, Buffer.from([(original[0] as number) ^ 0x01]));
    const logFrom = statSync(host1.logFile).size;

    const refused = await push("big@1", host1);
    expect(refused.state, refused.output).toBe("failed");
    expect(refused.error?.code).toBe("GILD_STREAM_HASH_MISMATCH");
    expect(refused.error?.message).toMatch(/^chunk 5 of \d+ /);
    expectRefusedAt(host1, 5, logFrom);

    // The controller found its file damaged and dropped it; the next push makes it again, and the
    // agent resumes after the 5 chunks it kept.
    const again = await push("big@1", host1);
    expect(again.state, again.output).toBe("done");
    expect(again.resumedFrom).toBe(5 * chunk);
    expect(again.bytesTransferred).toBe(size - 5 * chunk);
    await expectIntact(host1, "big");
    await evict("big@1", host1);
  });

  it("refuses a chunk of another artifact put in place of one of this one's", async () => {
    const foreign = Buffer.alloc(chunk);
    const handle = await open(otherFile, "r");
    const { bytesRead } = await handle.read(foreign, 0, chunk, 2 * chunk);
    await handle.close();
    expect(bytesRead).toBe(chunk);
    await overwrite(bigFile, 3 * chunk, foreign);
    const logFrom = statSync(host1.logFile).size;

    const refused = await push("big@1", host1);
    expect(refused.error?.code, refused.output).toBe("GILD_STREAM_HASH_MISMATCH");
    expect(refused.error?.message).toMatch(/^chunk 3 of \d+ /);
    expectRefusedAt(host1, 3, logFrom);

    const again = await push("big@1", host1);
    expect(again.state, again.output).toBe("done");
    expect(again.resumedFrom).toBe(3 * chunk);
    await expectIntact(host1, "big");
    await evict("big@1", host1);
  });

  /**
   * Push big@1 to a host, truncate the controller's artifact file to `keep` bytes once the host has
   * spooled two chunks, and return the failed push (every resume meets the same end).
   */
  async function pushTruncated(host: FleetHost, keep: number): Promise<PushResult & { output: string }> {
    const pushing = push("big@1", host);
    await waitFor(() => existsSync(spoolDir(host)) && spooled(host) >= 2 * chunk, {
      what: `${host.name} to spool two chunks`,
      timeoutMs: 60_000,
      intervalMs: 10,
    });
    await truncate(bigFile, keep);
    return pushing;
  }

  it("a truncated artifact, cut mid-chunk: the agent keeps the whole chunks before the cut and resumes at the next", async () => {
    const refused = await pushTruncated(host2, 10 * chunk + chunk / 2);
    expect(refused.state, refused.output).toBe("failed");
    expect(refused.error?.code).toBe("GILD_TRANSFER_FAILED");
    expect(hasImage(host2, "big")).toBe(false);
    expect(staging(host2)).toEqual([]);
    // The half chunk after the tenth was dropped: the spool holds whole verified chunks only.
    expect(spooled(host2)).toBe(10 * chunk);

    // The controller sees its file is short and makes it again.
    const again = await push("big@1", host2);
    expect(again.state, again.output).toBe("done");
    expect(again.resumedFrom).toBe(10 * chunk);
    expect(again.bytesTransferred).toBe(size - 10 * chunk);
    await expectIntact(host2, "big");
    await evict("big@1", host2);
  });

  it("a cut at a chunk boundary: the resume starts there, and no byte crosses the wire twice", async () => {
    const refused = await pushTruncated(host2, 12 * chunk);
    expect(refused.error?.code, refused.output).toBe("GILD_TRANSFER_FAILED");
    expect(hasImage(host2, "big")).toBe(false);
    expect(spooled(host2)).toBe(12 * chunk);

    const id = await hostId(host2);
    const artifact = refused.artifact?.id as string;
    const logFrom = statSync(fleet.controllerLogFile).size;
    const again = await push("big@1", host2);
    expect(again.state, again.output).toBe("done");
    expect(again.resumedFrom).toBe(12 * chunk);
    expect(again.bytesTransferred).toBe(size - 12 * chunk);
    expect(controllerSent(id, artifact, logFrom)).toBe(size - 12 * chunk);
    await expectIntact(host2, "big");
    await evict("big@1", host2);
  });

  it("a receive killed mid-stream is started again from the spool, and nothing is downloaded twice", async () => {
    const id = await hostId(host1);
    const controllerFrom = statSync(fleet.controllerLogFile).size;
    const agentFrom = statSync(host1.logFile).size;
    const agentPid = host1.pid() as number;
    const pushing = push("big@1", host1);
    // receive runs from the transfer's start, beside the download.
    const receivePid = await waitFor(() => descendantProcesses(agentPid, ["btrfs", "receive"])[0], {
      what: "btrfs receive running under the agent",
      timeoutMs: 60_000,
      intervalMs: 5,
    });
    await waitFor(() => spooled(host1) >= 4 * chunk, {
      what: "four chunks spooled",
      timeoutMs: 60_000,
      intervalMs: 10,
    });
    expect(spooled(host1)).toBeLessThan(size);
    process.kill(receivePid, "SIGKILL");
    await waitFor(() => !processAlive(receivePid), { what: "the receive to die", timeoutMs: 10_000 });

    const pushed = await pushing;
    expect(pushed.state, pushed.output).toBe("done");
    expect(pushed.resumedFrom).toBe(0);
    expect(pushed.bytesTransferred).toBe(size);
    // One socket, every byte once.
    expect(controllerSent(id, pushed.artifact?.id as string, controllerFrom)).toBe(size);
    const restarts = logLines(host1.logFile, agentFrom).filter(
      (l) => l.msg === "btrfs receive stopped; starting it again from the spool",
    );
    expect(restarts.length).toBe(1);
    await expectIntact(host1, "big");
    expect(host1.pid()).toBe(agentPid);
    await evict("big@1", host1);
  });

  it("an agent killed mid-transfer checks its spool again on restart and resumes at a chunk", async () => {
    const pushing = push("big@1", host2);
    await waitFor(() => existsSync(spoolDir(host2)) && spooled(host2) >= 4 * chunk, {
      what: "four chunks spooled",
      timeoutMs: 60_000,
      intervalMs: 10,
    });
    await host2.killAgent();
    const left = spooled(host2);
    expect(left).toBeLessThan(size);
    await host2.startAgent();
    const pushed = await pushing;
    expect(pushed.state, pushed.output).toBe("done");
    expect(pushed.resumedFrom).toBeGreaterThanOrEqual(4 * chunk);
    expect((pushed.resumedFrom ?? 1) % chunk).toBe(0);
    expect(pushed.resumedFrom).toBeLessThanOrEqual(left);
    await expectIntact(host2, "big");
  });
});
