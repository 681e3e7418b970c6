import { generateKeyPairSync, verify } from "node:crypto";
import { PEER_TICKET_TTL_MS, PeerSourcing } from "@gild/controller";
import { silentLogger } from "@gild/core";
import { decodePeerTicket, encodeManifest, type PeerSource, peerTicketSignedBytes } from "@gild/protocol";
import { beforeEach, describe, expect, it } from "vitest";
import type { CommandRecord } from "../src/store/commands-repo.js";

// PeerSourcing with its real planner, key and tickets; the hosts are records in a map and the clock
// is a number the tests move. docs/architecture.md, Peer fan-out.

type HostRecord = Parameters<PeerSourcing["sourcesFor"]>[1];

const T0 = 1_800_000_000_000;
const MIN = 60_000;
const ARTIFACT = "a".repeat(32);
const OTHER_ARTIFACT = "b".repeat(32);

const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const signingKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();

function host(id: string, patch: Partial<HostRecord> = {}, facts: Record<string, string> = {}): HostRecord {
  return {
    id,
    name: `name-${id}`,
    labels: {},
    state: "online",
    lastSeen: T0,
    joinedAt: T0,
    agentVersion: "0.1.0",
    protocolVersion: 2,
    kernelVersion: null,
    btrfsProgsVersion: null,
    maxStreamVersion: 2,
    facts: { peer_address: `10.0.0.${id.slice(1)}:7744`, peer_fetch: "1", ...facts },
    inventory: null,
    ...patch,
  };
}

describe("PeerSourcing", () => {
  let hosts: Map<string, HostRecord>;
  let offline: Set<string>;
  let now: number;
  let sourcing: PeerSourcing;

  beforeEach(() => {
    hosts = new Map(["h1", "h2", "h3", "h4", "h5", "h6", "h7"].map((id) => [id, host(id)]));
    offline = new Set();
    now = T0;
    sourcing = new PeerSourcing({
      signingKeyPem,
      host: (id) => hosts.get(id),
      isOnline: (id) => !offline.has(id),
      log: silentLogger,
      now: () => now,
    });
  });

  /** The peers (host ids, in order) a host's pull of `artifact` is given. */
  const peersOf = (id: string, artifact = ARTIFACT): string[] =>
    sourcing.sourcesFor(artifact, hosts.get(id) as HostRecord).map((s) => s.hostId);
  /** The same, each with whether that source still downloads. */
  const sourcesOf = (id: string, artifact = ARTIFACT): Array<[string, boolean]> =>
    sourcing.sourcesFor(artifact, hosts.get(id) as HostRecord).map((s) => [s.hostId, s.downloading ?? false]);

  it("feeds the first host from the controller and the rest from each other, two per host, breadth first", () => {
    expect(["h1", "h2", "h3", "h4", "h5", "h6", "h7"].map((id) => [id, peersOf(id)])).toEqual([
      ["h1", []],
      ["h2", ["h1"]],
      ["h3", ["h1"]],
      // Each host's grandparent is its alternate...
      ["h4", ["h2", "h1"]],
      ["h5", ["h2", "h1"]],
      // ... up to two per host: h1 is the alternate of two already.
      ["h6", ["h3"]],
      ["h7", ["h3"]],
    ]);
  });

  it("signs each source a ticket for exactly that requester, artifact and server, for 2 hours", () => {
    peersOf("h1");
    const [source] = sourcing.sourcesFor(ARTIFACT, hosts.get("h2") as HostRecord) as [PeerSource];
    expect(source.address).toBe("10.0.0.1:7744");
    expect(decodePeerTicket(source.ticket)).toEqual({
      requesterHostId: "h2",
      artifactId: ARTIFACT,
      serverHostId: "h1",
      expiresAtMs: T0 + PEER_TICKET_TTL_MS,
    });
    expect(PEER_TICKET_TTL_MS).toBe(2 * 3_600_000);
    expect(verify(null, peerTicketSignedBytes(source.ticket), publicKey, source.ticketSignature)).toBe(true);
    // Signed over the context prefix, not the bare ticket: it cannot pass for a manifest's signature.
    expect(verify(null, source.ticket, publicKey, source.ticketSignature)).toBe(false);
  });

  it("names no host that cannot serve: no peer address, offline, protocol 1", () => {
    hosts.set("h1", host("h1", {}, { peer_address: "" }));
    hosts.set("h2", host("h2", { protocolVersion: 1 }));
    offline.add("h3");
    expect(peersOf("h1")).toEqual([]);
    expect(peersOf("h2")).toEqual([]);
    expect(peersOf("h3")).toEqual([]);
    // h4 is the first that serves; h5 is fed by it.
    expect(peersOf("h4")).toEqual([]);
    expect(peersOf("h5")).toEqual(["h4"]);
  });

  it("gives a host that cannot fetch from peers the controller, and names it for nobody, whatever it listens on", () => {
    // Its certificate is what it would serve with, too: a host without one serves nobody.
    hosts.set("h1", host("h1", {}, { peer_fetch: "0" }));
    expect(peersOf("h1")).toEqual([]);
    expect(peersOf("h2")).toEqual([]);
    expect(peersOf("h3")).toEqual(["h2"]);
  });

  it("a host that finished is a holder, the first parent of later hosts; one that failed feeds nobody", () => {
    peersOf("h1");
    peersOf("h2");
    sourcing.finished(ARTIFACT, "h2", true);
    sourcing.finished(ARTIFACT, "h1", false);
    expect(peersOf("h3")).toEqual(["h2"]);
    // h1 is out of the tree: it is planned anew when it pulls again.
    expect(peersOf("h1")).toEqual(["h2"]);
  });

  it("marks a source that still downloads (its pull may not have begun when asked), not a holder", () => {
    sourcesOf("h1");
    expect(sourcesOf("h2")).toEqual([["h1", true]]);
    sourcing.finished(ARTIFACT, "h1", true);
    expect(sourcesOf("h3")).toEqual([["h1", false]]);
    // h4's parent still downloads; its alternate, h1, holds it all.
    expect(sourcesOf("h4")).toEqual([
      ["h2", true],
      ["h1", false],
    ]);
  });

  it("moves a transfer's tree when a pull finishes, and reads the pull's body only for a host in two transfers", () => {
    let bodyReads = 0;
    const pull = (hostId: string, artifactId: string): CommandRecord =>
      ({
        id: `ro_1:${hostId}:fetch`,
        hostId,
        kind: "pullImage",
        state: "succeeded",
        error: null,
        result: null,
        rolloutId: "ro_1",
        createdAt: T0,
        updatedAt: T0,
        get command() {
          bodyReads++;
          const manifest = encodeManifest({
            artifactId,
            line: "web",
            version: 2,
            parentVersion: 0,
            parentUuid: "",
            uuid: "u",
            sizeBytes: 1,
            sha256: "ab".repeat(32),
            streamVersion: 2,
            createdAtMs: T0,
          });
          return { commandId: `ro_1:${hostId}:fetch`, pullImage: { manifest } };
        },
      }) as unknown as CommandRecord;
    peersOf("h1");
    peersOf("h2");
    sourcing.onCommandFinished(pull("h1", ARTIFACT));
    // Finished, h1 holds the artifact: the first parent of the next host, before h2 that still downloads.
    expect(bodyReads).toBe(0);
    expect(sourcesOf("h3")).toEqual([["h1", false]]);
    // h2 downloads two artifacts at once: the body says which one finished.
    peersOf("h2", OTHER_ARTIFACT);
    sourcing.onCommandFinished(pull("h2", OTHER_ARTIFACT));
    expect(bodyReads).toBe(1);
    expect(sourcesOf("h4", OTHER_ARTIFACT)).toEqual([["h2", false]]);
    // ... and h2 still downloads the first.
    expect(sourcesOf("h5")).toEqual([
      ["h2", true],
      ["h1", false],
    ]);
  });

  it("keeps one tree per artifact", () => {
    peersOf("h1");
    expect(peersOf("h2", OTHER_ARTIFACT)).toEqual([]);
    expect(peersOf("h3", OTHER_ARTIFACT)).toEqual(["h2"]);
  });

  it("names a reported bad peer for nobody, in any transfer, for an hour", () => {
    peersOf("h1");
    peersOf("h2");
    sourcing.finished(ARTIFACT, "h1", true);
    sourcing.finished(ARTIFACT, "h2", true, [{ hostId: "h1", reason: "chunk 3 differs" }]);
    expect(peersOf("h3")).toEqual(["h2"]);
    expect(peersOf("h1", OTHER_ARTIFACT)).toEqual([]);
    expect(peersOf("h4", OTHER_ARTIFACT)).toEqual([]);
    now = T0 + 61 * MIN;
    const third = "c".repeat(32);
    expect(peersOf("h1", third)).toEqual([]);
    expect(peersOf("h5", third)).toEqual(["h1"]);
  });

  it("forgets a transfer's tree 25 minutes after it was last touched", () => {
    peersOf("h1");
    sourcing.finished(ARTIFACT, "h1", true);
    now = T0 + 24 * MIN;
    expect(peersOf("h2")).toEqual(["h1"]);
    sourcing.finished(ARTIFACT, "h2", true);
    now += 26 * MIN;
    expect(peersOf("h3")).toEqual([]);
  });

  it("moves a host that pulls again to the end of the tree, planned anew", () => {
    peersOf("h1");
    peersOf("h2");
    peersOf("h3");
    // h2 retries: h1 still has room for one (h3 took one of its two places), so h2 gets it again.
    expect(peersOf("h2")).toEqual(["h1"]);
    expect(peersOf("h4")).toEqual(["h3", "h1"]);
  });
});
