import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createBusyboxImage, createFleet, type Fleet, type FleetHost, waitFor } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// Peer fan-out when peers fail, with real agents in the namespaced fleet: a peer killed while others
// fetch from it, and peers the controller still counts as holders that lost what they held (a restart
// empties an agent's peer cache). Either way every pull completes, each chunk verified, the rest coming
// from other peers or the controller; a peer that went away is not reported as a bad one.

const PEER_PORT = 7745;

interface PushResult {
  host: string;
  state: string;
  bytesFromPeers?: number;
  badPeers?: Array<{ hostId: string; reason: string }>;
  artifact?: { id: string; sizeBytes: number };
  error?: { code: string; message: string };
}

/** Bytes in a host's download spool now (its .part files). */
function spooled(host: FleetHost): number {
  const dir = join(host.poolPath, ".spool");
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith(".part"))
      .reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
  } catch {
    return 0;
  }
}

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "peer fan-out when peers fail", () => {
  let fleet: Fleet;
  const host = (n: number) => fleet.hosts[n - 1] as FleetHost;

  async function push(hosts: string[]): Promise<PushResult[]> {
    const res = await fleet.gild(["image", "push", "wide@1", "--hosts", hosts.join(","), "--json"], {
      timeoutMs: 300_000,
    });
    expect(res.code, res.stderr).toBe(0);
    return JSON.parse(res.stdout) as PushResult[];
  }

  beforeAll(async () => {
    fleet = await createFleet({
      hosts: 4,
      // host-1 serves slowly, so that the others are still fetching from it when it is killed.
      hostAgentArgs: (index, address) => [
        "--peer-listen",
        `${address}:${PEER_PORT}`,
        ...(index === 0 ? ["--peer-upload-rate", "2MiB"] : []),
      ],
    });
    await createBusyboxImage(fleet, "wide", {
      marker: "peer faults",
      payload: { path: "srv/payload.bin", bytes: 24 * 1024 * 1024 },
    });
    // host-1 holds it first: the controller names it as the source of the hosts that come next.
    const first = await push(["host-1"]);
    expect(first.map((r) => r.state)).toEqual(["done"]);
  }, 600_000);

  afterAll(async () => {
    await fleet?.destroy();
  });

  it("a peer killed while three hosts fetch from it: each pull completes from the others and the controller", async () => {
    const pushing = push(["host-2", "host-3", "host-4"]);
    // Mid-transfer: a chunk or more verified and spooled on some host, far from all of them.
    await waitFor(() => [2, 3, 4].some((n) => spooled(host(n)) >= 1024 * 1024), {
      timeoutMs: 120_000,
      what: "a host fetching from host-1",
    });
    await host(1).killAgent();
    const results = await pushing;
    expect(results.map((r) => [r.host, r.state])).toEqual([
      ["host-2", "done"],
      ["host-3", "done"],
      ["host-4", "done"],
    ]);
    const size = results[0]?.artifact?.sizeBytes as number;
    const fromPeers = results.reduce((n, r) => n + (r.bytesFromPeers ?? 0), 0);
    // Some came from peers before the kill; not all of it could (host-1 was slow, then gone).
    expect(fromPeers).toBeGreaterThan(0);
    expect(fromPeers).toBeLessThan(3 * size);
    // Gone is not bad: nobody reports a peer that served a chunk that failed its digest.
    expect(results.flatMap((r) => r.badPeers ?? [])).toEqual([]);
    await host(1).startAgent();
    await fleet.waitHostsOnline(["host-1"]);
  });

  it("peers that lost what they held (restarted) answer so, and the pull completes from the controller", async () => {
    // Every other host is a holder to the controller; after a restart none of them has the file.
    for (const n of [1, 2, 3]) {
      await host(n).stopAgent();
      await host(n).startAgent();
    }
    await fleet.waitHostsOnline(["host-1", "host-2", "host-3"]);
    const rm = await fleet.gild(["image", "rm", "wide@1", "--hosts", "host-4", "--json"]);
    expect(rm.code, rm.stderr).toBe(0);
    const logFrom = statSync(host(4).logFile).size;
    const [result] = await push(["host-4"]);
    expect(result?.state, JSON.stringify(result)).toBe("done");
    expect(result?.bytesFromPeers ?? 0).toBe(0);
    expect(result?.badPeers ?? []).toEqual([]);
    // It asked a peer the controller named, which said it holds nothing: given up at once, no blame.
    const givenUp = readFileSync(host(4).logFile)
      .subarray(logFrom)
      .toString("utf8")
      .split("\n")
      .filter((l) => l.includes('"chunk source given up"'))
      .map((l) => JSON.parse(l) as { source: string; code: string });
    expect(givenUp.length).toBeGreaterThan(0);
    expect(givenUp.every((g) => g.code === "GILD_PEER_NOT_HOLDING" && g.source !== "controller")).toBe(true);
  });
});
