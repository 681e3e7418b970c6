import { createHash, createPrivateKey, type KeyObject, sign } from "node:crypto";
import { copyFile, open, readFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import {
  ChunkFetcher,
  type ChunkSourceSpec,
  controllerRangeReader,
  type HeldLayout,
  PEER_TICKET_HEADER,
  PeerHoldings,
  PeerServer,
  type PeerTls,
  peerRangeReader,
  ticketHeaderValue,
} from "@gild/agent";
import { openControllerRequest, readBody } from "@gild/api-client";
import { silentLogger } from "@gild/core";
import { encodePeerTicket, type PeerSource, peerTicketSignedBytes } from "@gild/protocol";
import {
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  type FleetHost,
  type RolloutStatusView,
  rolloutStatus,
  run,
  updateImage,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Peer fan-out on a real fleet: the agents' peer servers (--peer-listen) with the certificates the
// controller issued them, the real artifact socket of the controller, and the agent's chunk fetcher.
// Until pulls are chunked (another part of issue 14), the controller's manifests carry no chunk digests,
// so this test cuts the controller's artifact file into chunks itself, as the chunked artifact service
// will, and signs tickets with the controller's key, as PeerSourcing does.

const PEER_PORT = 7744;
const CHUNK = 1024 * 1024;

interface HostPeer {
  host: FleetHost;
  hostId: string;
  credential: string;
  tls: PeerTls;
}

async function hostPeer(host: FleetHost): Promise<HostPeer> {
  const read = (name: string) => readFile(join(host.stateDir, name), "utf8");
  const identity = JSON.parse(await read("identity.json")) as { hostId: string };
  return {
    host,
    hostId: identity.hostId,
    credential: (await read("credential")).trim(),
    tls: {
      certPem: await read("peer-cert.pem"),
      keyPem: await read("peer-key.pem"),
      caPem: await read("controller-ca.pem"),
    },
  };
}

/** A GET to a peer server: the status and the coded error, or the TLS failure. */
function peerGet(
  address: string,
  path: string,
  options: { tls?: Partial<PeerTls>; ticket?: string },
): Promise<{ status: number; code?: string } | { tlsError: string }> {
  const [hostname, port] = address.split(":");
  return new Promise((resolve) => {
    const req = request(
      {
        host: hostname,
        port: Number(port),
        path,
        method: "GET",
        agent: false,
        rejectUnauthorized: false,
        ...(options.tls?.certPem ? { cert: options.tls.certPem, key: options.tls.keyPem } : {}),
        headers: options.ticket ? { [PEER_TICKET_HEADER]: options.ticket } : {},
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d.toString();
        });
        res.on("end", () => {
          const code = (() => {
            try {
              return (JSON.parse(body) as { error?: { code?: string } }).error?.code;
            } catch {
              return undefined;
            }
          })();
          resolve({ status: res.statusCode ?? 0, ...(code ? { code } : {}) });
        });
        res.on("error", (err) => resolve({ tlsError: err.message }));
      },
    );
    req.on("error", (err) => resolve({ tlsError: err.message }));
    req.end();
  });
}

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "peer fan-out", () => {
  let fleet: Fleet;
  let peers: HostPeer[];
  let signingKey: KeyObject;
  let artifact: { id: string; path: string; sizeBytes: number; sha256: string; chunks: Buffer[] };
  const servers: PeerServer[] = [];

  beforeAll(async () => {
    fleet = await createFleet({
      hosts: 4,
      hostAgentArgs: (_index, address) => ["--peer-listen", `${address}:${PEER_PORT}`],
    });
    await createBusyboxImage(fleet, "web", {
      marker: "fan-out v1",
      payload: { path: "srv/payload.bin", bytes: 24 * 1024 * 1024 },
    });
    const push = await fleet.gild(["image", "push", "web@1", "--hosts", "host-1", "--json"], {
      timeoutMs: 300_000,
    });
    const results = JSON.parse(push.stdout) as Array<{
      state: string;
      artifact?: { id: string; sizeBytes: number };
    }>;
    expect(results[0]?.state).toBe("done");
    const id = results[0]?.artifact?.id as string;
    const path = join(fleet.controllerDataDir, "artifacts", `${id}.stream`);
    const bytes = await readFile(path);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += CHUNK)
      chunks.push(
        createHash("sha256")
          .update(bytes.subarray(at, at + CHUNK))
          .digest(),
      );
    artifact = {
      id,
      path,
      sizeBytes: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      chunks,
    };
    signingKey = createPrivateKey(await readFile(join(fleet.controllerDataDir, "signing.key"), "utf8"));
    peers = await Promise.all(fleet.hosts.map(hostPeer));
  }, 600_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await fleet?.destroy();
  });

  const layout = (): HeldLayout => ({
    artifactId: artifact.id,
    sizeBytes: artifact.sizeBytes,
    chunkSize: CHUNK,
  });

  function ticket(
    requester: string,
    server: string,
    options: { artifactId?: string; expiresAtMs?: number } = {},
  ) {
    const bytes = encodePeerTicket({
      requesterHostId: requester,
      artifactId: options.artifactId ?? artifact.id,
      serverHostId: server,
      expiresAtMs: options.expiresAtMs ?? Date.now() + 60_000,
    });
    return { ticket: bytes, ticketSignature: sign(null, peerTicketSignedBytes(bytes), signingKey) };
  }

  describe("an agent's peer server", () => {
    const chunksPath = () => `/v1/peer/artifacts/${artifact.id}/chunks?from=0&to=1`;
    const server = () => `${fleet.hosts[1]?.address}:${PEER_PORT}`;
    const header = (t: ReturnType<typeof ticket>) => ticketHeaderValue(t.ticket, t.ticketSignature);

    it("each agent got a certificate of the controller's CA naming its host id", () => {
      for (const p of peers) expect(p.tls.certPem).toContain("BEGIN CERTIFICATE");
    });

    it("refuses a client without a certificate, or with one of another CA, at the TLS handshake", async () => {
      const [a, b] = peers as [HostPeer, HostPeer];
      const valid = header(ticket(a.hostId, b.hostId));
      expect(await peerGet(server(), chunksPath(), { ticket: valid })).toHaveProperty("tlsError");
      // A certificate naming a's host id, but made by another CA: what anyone can make.
      const dir = fleet.dir;
      await run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        `/CN=${a.hostId}`,
        "-keyout",
        join(dir, "other-ca.key"),
        "-out",
        join(dir, "other-ca.pem"),
      ]);
      const otherCa = {
        certPem: await readFile(join(dir, "other-ca.pem"), "utf8"),
        keyPem: await readFile(join(dir, "other-ca.key"), "utf8"),
      };
      expect(await peerGet(server(), chunksPath(), { tls: otherCa, ticket: valid })).toHaveProperty(
        "tlsError",
      );
    });

    it("refuses a ticket for another host, another artifact, another server, expired, or forged", async () => {
      const [a, b, c] = peers as [HostPeer, HostPeer, HostPeer];
      const as = (t: ReturnType<typeof ticket>) =>
        peerGet(server(), chunksPath(), { tls: a.tls, ticket: header(t) });
      const refused = { status: 403, code: "GILD_PEER_TICKET_INVALID" };
      expect(await as(ticket(c.hostId, b.hostId))).toEqual(refused);
      expect(await as(ticket(a.hostId, b.hostId, { artifactId: "f".repeat(32) }))).toEqual(refused);
      expect(await as(ticket(a.hostId, c.hostId))).toEqual(refused);
      expect(await as(ticket(a.hostId, b.hostId, { expiresAtMs: Date.now() - 1000 }))).toEqual(refused);
      const forged = ticket(a.hostId, b.hostId);
      forged.ticketSignature[0] = (forged.ticketSignature[0] as number) ^ 1;
      expect(await as(forged)).toEqual(refused);
      expect(await peerGet(server(), chunksPath(), { tls: a.tls })).toEqual(refused);
      // A valid ticket gets past every check; this agent holds nothing of it (no pull registered it).
      expect(await as(ticket(a.hostId, b.hostId))).toEqual({ status: 404, code: "GILD_PEER_NOT_HOLDING" });
    });
  });

  describe("the chunk fetcher", () => {
    /** A peer server (the agent's code) for `peer`'s certificate on loopback, holding `file`. */
    async function servePeer(
      peer: HostPeer,
      file: string,
      uploadRate = 0,
    ): Promise<{ server: PeerServer; address: string }> {
      const holdings = new PeerHoldings({
        cacheDir: join(fleet.dir, `cache-${peer.hostId}`),
        log: silentLogger,
      });
      holdings.downloading(layout(), file, artifact.chunks.length);
      return serveHoldings(peer, holdings, { uploadRate });
    }

    function source(
      requester: HostPeer,
      server: HostPeer,
      address: string,
      options: { downloading?: boolean } = {},
    ): ChunkSourceSpec {
      const spec: PeerSource = {
        hostId: server.hostId,
        address,
        ...ticket(requester.hostId, server.hostId),
        ...options,
      };
      return { id: server.hostId, read: peerRangeReader(spec, artifact.id, CHUNK, requester.tls) };
    }

    /** `spec`, counting the heartbeats it passes on (empty pieces: the peer waits, its download moves). */
    function countingHeartbeats(spec: ChunkSourceSpec, onHeartbeat: (n: number) => void): ChunkSourceSpec {
      let heartbeats = 0;
      return {
        id: spec.id,
        read: async function* (range, signal) {
          for await (const data of spec.read(range, signal)) {
            if (data.length === 0) onHeartbeat(++heartbeats);
            yield data;
          }
        },
      };
    }

    /** A peer server (the agent's code) for `peer`'s certificate on loopback, over `holdings`. */
    async function serveHoldings(
      peer: HostPeer,
      holdings: PeerHoldings,
      options: { uploadRate?: number; log?: typeof silentLogger } = {},
    ): Promise<{ server: PeerServer; address: string }> {
      const server = new PeerServer({
        hostId: peer.hostId,
        tls: peer.tls,
        holdings,
        signingPublicKeyPem: await readFile(join(peer.host.stateDir, "controller-signing.pub"), "utf8"),
        uploadRate: options.uploadRate ?? 0,
        log: options.log ?? silentLogger,
      });
      servers.push(server);
      const bound = await server.listen("127.0.0.1", 0);
      return { server, address: `127.0.0.1:${bound.port}` };
    }

    function controllerSource(requester: HostPeer): ChunkSourceSpec {
      return {
        id: "controller",
        read: controllerRangeReader({
          controllerUrl: fleet.controllerUrl,
          credential: requester.credential,
          caPem: requester.tls.caPem,
          artifactId: artifact.id,
          sizeBytes: artifact.sizeBytes,
        }),
      };
    }

    /** A fetcher of the whole artifact for `requester`: `from` first, the controller last. */
    function fetcherFor(
      requester: HostPeer,
      from: ChunkSourceSpec[],
      options: { rangeBytes?: number; stallMs?: number } = {},
    ): ChunkFetcher {
      return new ChunkFetcher({
        layout: layout(),
        chunkSha256: artifact.chunks,
        firstChunk: 0,
        peers: from,
        controller: controllerSource(requester),
        log: silentLogger,
        ...options,
      });
    }

    async function fetchAll(fetcher: ChunkFetcher): Promise<string> {
      const hash = createHash("sha256");
      let expected = 0;
      for await (const chunk of fetcher.chunks()) {
        expect(chunk.index).toBe(expected++);
        hash.update(chunk.data);
      }
      expect(expected).toBe(artifact.chunks.length);
      return hash.digest("hex");
    }

    it("fetches every chunk from two peers at once, in order, nothing from the controller", async () => {
      const [a, b, c] = peers as [HostPeer, HostPeer, HostPeer];
      const pb = await servePeer(b, artifact.path);
      const pc = await servePeer(c, artifact.path);
      const fetcher = fetcherFor(a, [source(a, b, pb.address), source(a, c, pc.address)], {
        rangeBytes: 2 * CHUNK,
      });
      expect(await fetchAll(fetcher)).toBe(artifact.sha256);
      const report = fetcher.report();
      expect(report.bytesFromController).toBe(0);
      expect(report.bytesFromPeers).toBe(artifact.sizeBytes);
      expect(report.badPeers).toEqual([]);
    });

    it("a peer serving a flipped byte is reported bad and not used again; the transfer completes", async () => {
      const [a, b, c] = peers as [HostPeer, HostPeer, HostPeer];
      const lying = join(fleet.dir, "lying.stream");
      await copyFile(artifact.path, lying);
      // A flipped byte in every chunk: whichever range the fetcher gives this peer first (both peers
      // start at once, and which chunks each gets depends on timing), its first chunk fails.
      const handle = await open(lying, "r+");
      const byte = Buffer.alloc(1);
      for (let at = 17; at < artifact.sizeBytes; at += CHUNK) {
        await handle.read(byte, 0, 1, at);
        byte[0] = (byte[0] as number) ^ 0xff;
        await handle.write(byte, 0, 1, at);
      }
      await handle.close();
      const pb = await servePeer(b, lying);
      const pc = await servePeer(c, artifact.path);
      const fetcher = fetcherFor(a, [source(a, b, pb.address), source(a, c, pc.address)], {
        rangeBytes: 2 * CHUNK,
      });
      expect(await fetchAll(fetcher)).toBe(artifact.sha256);
      const report = fetcher.report();
      expect(report.badPeers.map((p) => p.hostId)).toEqual([b.hostId]);
      expect(report.badPeers[0]?.reason).toMatch(/chunk \d+/);
      // The honest peer carried the rest; the controller was not needed.
      expect(report.bytesFromController).toBe(0);
    });

    it("a peer that dies mid-transfer is given up and the controller finishes it", async () => {
      const [a, b] = peers as [HostPeer, HostPeer];
      // Paced so that it is still sending when it goes.
      const pb = await servePeer(b, artifact.path, 4 * CHUNK);
      const fetcher = fetcherFor(a, [source(a, b, pb.address)], { stallMs: 2_000 });
      const hash = createHash("sha256");
      let n = 0;
      for await (const chunk of fetcher.chunks()) {
        hash.update(chunk.data);
        if (++n === 3) await pb.server.close();
      }
      expect(hash.digest("hex")).toBe(artifact.sha256);
      const report = fetcher.report();
      expect(report.badPeers).toEqual([]);
      expect(report.unavailablePeers.map((p) => p.hostId)).toEqual([b.hostId]);
      expect(report.bytesFromPeers).toBeGreaterThanOrEqual(3 * CHUNK);
      expect(report.bytesFromController).toBeGreaterThan(0);
      expect(report.bytesFromController + report.bytesFromPeers).toBe(artifact.sizeBytes);
    });

    it("a peer keeps everything it uploads, to all its requesters together, to its --peer-upload-rate", async () => {
      const [a, b, c] = peers as [HostPeer, HostPeer, HostPeer];
      // About three seconds for the two copies the test asks of it.
      const rate = Math.max(256 * 1024, Math.floor((2 * artifact.sizeBytes) / 3));
      const pb = await servePeer(b, artifact.path, rate);
      const fetchFromB = async (requester: HostPeer) => {
        const fetcher = fetcherFor(requester, [source(requester, b, pb.address)]);
        const digest = await fetchAll(fetcher);
        return { digest, report: fetcher.report() };
      };
      const started = performance.now();
      const [fromA, fromC] = await Promise.all([fetchFromB(a), fetchFromB(c)]);
      const seconds = (performance.now() - started) / 1000;
      for (const got of [fromA, fromC]) {
        expect(got.digest).toBe(artifact.sha256);
        expect(got.report.bytesFromController).toBe(0);
        expect(got.report.bytesFromPeers).toBe(artifact.sizeBytes);
      }
      // The first chunk goes at once; every later byte waits its turn at the one rate.
      const paced = 2 * artifact.sizeBytes - CHUNK;
      process.stdout.write(
        `peer upload limit ${(rate / 1024).toFixed(0)} KiB/s: two copies of ${artifact.sizeBytes} bytes in ${seconds.toFixed(2)} s, ${(paced / seconds / 1024).toFixed(0)} KiB/s after the first chunk\n`,
      );
      expect(paced / seconds).toBeLessThanOrEqual(rate * 1.05);
    });

    it("a peer still downloading serves each chunk once it is verified (a pipeline)", async () => {
      const [a, b] = peers as [HostPeer, HostPeer];
      const holdings = new PeerHoldings({ cacheDir: join(fleet.dir, "cache-growing"), log: silentLogger });
      holdings.downloading(layout(), artifact.path, 0);
      const { address } = await serveHoldings(b, holdings);
      const fetcher = fetcherFor(a, [source(a, b, address)]);
      // The serving side verifies one chunk at a time, each only after the fetcher took the one before.
      let verified = 1;
      holdings.verified(artifact.id, verified);
      const hash = createHash("sha256");
      for await (const chunk of fetcher.chunks()) {
        hash.update(chunk.data);
        expect(chunk.index).toBeLessThan(verified);
        holdings.verified(artifact.id, ++verified);
      }
      expect(hash.digest("hex")).toBe(artifact.sha256);
      expect(fetcher.report().bytesFromController).toBe(0);
    });

    it("a source the controller named while it downloads, asked before its pull began, is asked again and serves it all", async () => {
      const [a, b] = peers as [HostPeer, HostPeer];
      const holdings = new PeerHoldings({ cacheDir: join(fleet.dir, "cache-late"), log: silentLogger });
      // The serving host's pull begins only after it refused this host once (its command came later).
      let refusals = 0;
      const log = {
        ...silentLogger,
        info: (fields: unknown) => {
          if ((fields as { code?: string }).code !== "GILD_PEER_NOT_HOLDING") return;
          if (++refusals === 1) holdings.downloading(layout(), artifact.path, artifact.chunks.length);
        },
      };
      log.child = () => log;
      const { address } = await serveHoldings(b, holdings, { log });
      const fetcher = fetcherFor(a, [source(a, b, address, { downloading: true })]);
      expect(await fetchAll(fetcher)).toBe(artifact.sha256);
      expect(refusals).toBe(1);
      expect(fetcher.report().bytesFromController).toBe(0);
      expect(fetcher.report().unavailablePeers).toEqual([]);
      // A holder (not named as downloading) that holds nothing is given up at once.
      const empty = new PeerHoldings({ cacheDir: join(fleet.dir, "cache-empty"), log: silentLogger });
      const holder = fetcherFor(a, [source(a, b, (await serveHoldings(b, empty)).address)]);
      expect(await fetchAll(holder)).toBe(artifact.sha256);
      expect(holder.report().unavailablePeers.map((p) => p.hostId)).toEqual([b.hostId]);
      expect(holder.report().bytesFromController).toBe(artifact.sizeBytes);
    });

    it("a peer waiting on its own download keeps the fetcher waiting past its stall time while that download moves", async () => {
      const [a, b] = peers as [HostPeer, HostPeer];
      const stallMs = 5_000;
      const holdings = new PeerHoldings({ cacheDir: join(fleet.dir, "cache-slow"), log: silentLogger });
      holdings.downloading(layout(), artifact.path, 0);
      const { address } = await serveHoldings(b, holdings);
      // Its download gets bytes all along, but its first chunk is verified only after three
      // heartbeats, more than the stall time after the request began.
      const moving = setInterval(() => holdings.moving(artifact.id), 200);
      try {
        const spec = countingHeartbeats(source(a, b, address), (n) => {
          if (n === 3) holdings.verified(artifact.id, artifact.chunks.length);
        });
        const started = performance.now();
        const fetcher = fetcherFor(a, [spec], { stallMs });
        expect(await fetchAll(fetcher)).toBe(artifact.sha256);
        expect(performance.now() - started).toBeGreaterThan(stallMs);
        expect(fetcher.report().bytesFromController).toBe(0);
        expect(fetcher.report().unavailablePeers).toEqual([]);
      } finally {
        clearInterval(moving);
      }
      // A peer whose own download stopped moving sends no heartbeat: given up after the stall time.
      let clock = Date.now();
      const stuck = new PeerHoldings({
        cacheDir: join(fleet.dir, "cache-stuck"),
        log: silentLogger,
        now: () => clock,
      });
      stuck.downloading(layout(), artifact.path, 0);
      clock += 60_000;
      let heartbeats = 0;
      const spec = countingHeartbeats(source(a, b, (await serveHoldings(b, stuck)).address), (n) => {
        heartbeats = n;
      });
      const fetcher = fetcherFor(a, [spec], { stallMs: 3_000 });
      expect(await fetchAll(fetcher)).toBe(artifact.sha256);
      expect(heartbeats).toBe(0);
      expect(fetcher.report().unavailablePeers.map((p) => p.hostId)).toEqual([b.hostId]);
      expect(fetcher.report().bytesFromController).toBe(artifact.sizeBytes);
    });
  });

  it("a push to every host: the controller sends about one copy, the hosts fetch the rest from each other", async () => {
    await createBusyboxImage(fleet, "wide", {
      marker: "fan-out wide",
      payload: { path: "srv/payload.bin", bytes: 32 * 1024 * 1024 },
    });
    const all = fleet.hosts.map((h) => h.name).join(",");
    const push = await fleet.gild(["image", "push", "wide@1", "--hosts", all, "--json"], {
      timeoutMs: 300_000,
    });
    expect(push.code, push.stderr).toBe(0);
    const results = JSON.parse(push.stdout) as Array<{
      host: string;
      state: string;
      bytesFromPeers?: number;
      badPeers?: unknown[];
      artifact?: { sizeBytes: number };
    }>;
    expect(results.map((r) => r.state)).toEqual(fleet.hosts.map(() => "done"));
    const size = results[0]?.artifact?.sizeBytes as number;
    expect(size).toBeGreaterThan(30 * 1024 * 1024);
    const fromPeers = results.reduce((n, r) => n + (r.bytesFromPeers ?? 0), 0);
    expect(results.every((r) => (r.badPeers ?? []).length === 0)).toBe(true);
    // What left the controller for this line, by its own count (GET /metrics).
    const trust = { caPem: await readFile(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8") };
    const token = (await readFile(join(fleet.controllerDataDir, "admin.token"), "utf8")).trim();
    const res = await openControllerRequest("GET", `${fleet.controllerUrl}/metrics`, undefined, trust, {
      authorization: `Bearer ${token}`,
    });
    const line = (await readBody(res))
      .split("\n")
      .find((l) => l.startsWith('gild_artifact_sent_bytes_total{line="wide"} '));
    const sent = Number(line?.split(" ")[1]);
    // Peers a host gave up without blame (gone, refusing, or silent for the stall time) send it to the
    // controller: what each agent logged of them says why, when the controller sent more than it should.
    const givenUp: string[] = [];
    for (const host of fleet.hosts) {
      const log = await readFile(host.logFile, "utf8").catch(() => "");
      for (const l of log.split("\n"))
        if (l.includes("chunk source given up")) givenUp.push(`${host.name}: ${l.slice(0, 300)}`);
    }
    const why = `peers given up:\n${givenUp.join("\n") || "(none)"}`;
    console.log(
      `fan-out to ${results.length} hosts: the controller sent ${(sent / size).toFixed(2)} copies, peers ${(fromPeers / size).toFixed(2)}; ${why}`,
    );
    expect(sent, why).toBeLessThanOrEqual(2 * size);
    expect(fromPeers, why).toBeGreaterThanOrEqual((results.length - 2) * size);
  });

  it("a peer that serves a bad chunk is named by `gild image push`, rollout status and its events", async () => {
    const id = Object.fromEntries(peers.map((p) => [p.host.name, p.hostId]));
    const name = Object.fromEntries(peers.map((p) => [p.hostId, p.host.name]));
    /** Flip one byte of what a host keeps for its peers: it then serves a chunk the manifest refutes. */
    const spoil = async (host: FleetHost, artifactId: string) => {
      const handle = await open(join(host.poolPath, ".peer-cache", `${artifactId}.stream`), "r+");
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, 1000);
      byte[0] = (byte[0] as number) ^ 0xff;
      await handle.write(byte, 0, 1, 1000);
      await handle.close();
    };
    await createBusyboxImage(fleet, "relay", { marker: "relay v1" });
    const all = fleet.hosts.map((h) => h.name).join(",");
    await createBusyboxApp(fleet, { app: "relay", image: "relay", hosts: all, port: 8090 });
    await deployApp(fleet, "relay", "relay@1", 300_000);
    await updateImage(fleet, "relay", "head -c 6000000 /dev/urandom > /more.bin");

    // host-1 takes relay@2 from the controller and keeps it for peers; host-2 is given host-1 as its
    // source, which now lies.
    const first = await fleet.gild(["image", "push", "relay@2", "--hosts", "host-1", "--json"]);
    expect(first.code, first.stderr).toBe(0);
    const artifactId = (JSON.parse(first.stdout) as Array<{ artifact: { id: string } }>)[0]?.artifact
      .id as string;
    await spoil(fleet.hosts[0] as FleetHost, artifactId);
    const second = await fleet.gild(["image", "push", "relay@2", "--hosts", "host-2"], {
      timeoutMs: 300_000,
    });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/host-2\s+done: .*; bad peers: host-1 \(chunk 0/);

    // host-1 is quarantined now; host-2 holds relay@2 and is the rollout's source for the others. It
    // lies too.
    await spoil(fleet.hosts[1] as FleetHost, artifactId);
    const started = await fleet.gildJson<RolloutStatusView>([
      "rollout",
      "start",
      "relay@2",
      "--canary",
      "0",
      "--waves",
      "100%",
      "--promote",
      "auto",
      "--min-healthy",
      "1s",
      "--bake",
      "1s",
      "--healthy-deadline",
      "60s",
    ]);
    const done = await watchRollout(fleet, started.id);
    expect(done.code, done.stderr).toBe(0);
    const view = await rolloutStatus(fleet, started.id);
    const reported = view.waves.flatMap((w) => w.hosts).filter((h) => (h.badPeers ?? []).length > 0);
    // host-3 and host-4 both fetched from host-2 (host-1 and host-2 had the image already).
    expect(reported.map((h) => h.name).sort()).toEqual(["host-3", "host-4"]);
    for (const h of reported)
      expect(h.badPeers).toEqual([
        { hostId: id["host-2"], host: "host-2", reason: expect.stringMatching(/chunk 0/) },
      ]);
    const events = (view.events ?? []).filter((e) => e.kind === "bad-peer");
    expect(events.map((e) => name[e.hostId ?? ""]).sort()).toEqual(["host-3", "host-4"]);
    // Events name hosts as the operator knows them.
    for (const e of events) expect(e.message).toContain("peer host-2 served a chunk");
    // The operator's view says it too.
    const text = await fleet.gild(["rollout", "status", started.id]);
    expect(text.stdout).toMatch(/host-3\s+healthy\s+.*bad peer: host-2/);
  }, 600_000);
});
