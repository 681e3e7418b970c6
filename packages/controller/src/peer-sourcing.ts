import { createPrivateKey, type KeyObject, sign } from "node:crypto";
import { DEFAULT_PEER_DEGREE, type Logger, PeerTree } from "@gild/core";
import {
  type BadPeer,
  decodeManifest,
  encodePeerTicket,
  type PeerSource,
  peerTicketSignedBytes,
} from "@gild/protocol";
import type { CommandRecord } from "./store/commands-repo.js";
import type { HostRecord } from "./store/hosts-repo.js";

/** How long a ticket lets a host fetch from a peer: a long transfer, with room for clocks apart. */
export const PEER_TICKET_TTL_MS = 2 * 3_600_000;
/** A transfer's tree is forgotten this long after its last host finished (the peers' cache keeps it 30 min). */
const SWARM_TTL_MS = 25 * 60_000;
/** A peer reported bad is named as nobody's source for this long. */
const BAD_PEER_QUARANTINE_MS = 3_600_000;

/** The host facts an agent reports for peer fan-out (Hello.facts). */
export const PEER_ADDRESS_FACT = "peer_address";
export const PEER_FETCH_FACT = "peer_fetch";

interface Swarm {
  tree: PeerTree;
  touchedAt: number;
}

/**
 * The peer sources each pull carries (docs/architecture.md, Peer fan-out). Per artifact it keeps
 * core's PeerTree (who was given what, who finished), which says where a new host goes; each peer
 * source gets a ticket signed with the controller's key. Only in memory: after a restart transfers
 * begin a new tree, which costs the controller at most one more copy.
 */
export class PeerSourcing {
  private readonly swarms = new Map<string, Swarm>();
  private readonly quarantined = new Map<string, number>();
  private readonly key: KeyObject;
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      signingKeyPem: string;
      /** The host's record now (for its peer address and whether it is online). */
      host: (hostId: string) => HostRecord | undefined;
      isOnline: (hostId: string) => boolean;
      log: Logger;
      now?: () => number;
      maxDegree?: number;
    },
  ) {
    this.key = createPrivateKey(deps.signingKeyPem);
    this.log = deps.log.child({ component: "peer-sourcing" });
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private canServe(hostId: string): boolean {
    const host = this.deps.host(hostId);
    const until = this.quarantined.get(hostId) ?? 0;
    // A peer server presents the host's certificate, the one peer_fetch says the host has.
    return (
      host !== undefined &&
      host.protocolVersion >= 2 &&
      (host.facts[PEER_ADDRESS_FACT] ?? "") !== "" &&
      host.facts[PEER_FETCH_FACT] === "1" &&
      until <= this.now() &&
      this.deps.isOnline(hostId)
    );
  }

  /** The peer sources of `host`'s pull of `artifactId` (empty: the controller only), with tickets. */
  sourcesFor(artifactId: string, host: HostRecord): PeerSource[] {
    this.expire();
    const now = this.now();
    let swarm = this.swarms.get(artifactId);
    if (!swarm) {
      // Whether a host may serve is looked at when it would be named: one that went away or was
      // reported bad feeds nobody new.
      const tree = new PeerTree(this.deps.maxDegree ?? DEFAULT_PEER_DEGREE, (id) => this.canServe(id));
      swarm = { tree, touchedAt: now };
      this.swarms.set(artifactId, swarm);
    }
    swarm.touchedAt = now;
    // A host that pulls again (a retry) goes to the end, planned anew.
    swarm.tree.remove(host.id);
    const canFetch = host.protocolVersion >= 2 && host.facts[PEER_FETCH_FACT] === "1";
    const sources = swarm.tree.add({ hostId: host.id, canServe: this.canServe(host.id), canFetch });
    const tree = swarm.tree;
    return sources.flatMap((s) =>
      s.kind === "peer" ? [this.ticketed(artifactId, host.id, s.hostId, now, !tree.holds(s.hostId))] : [],
    );
  }

  private ticketed(
    artifactId: string,
    requester: string,
    server: string,
    now: number,
    downloading: boolean,
  ): PeerSource {
    const ticket = encodePeerTicket({
      requesterHostId: requester,
      artifactId,
      serverHostId: server,
      expiresAtMs: now + PEER_TICKET_TTL_MS,
    });
    return {
      hostId: server,
      address: this.deps.host(server)?.facts[PEER_ADDRESS_FACT] ?? "",
      ticket,
      ticketSignature: sign(null, peerTicketSignedBytes(ticket), this.key),
      // Its own pull may not have begun yet when this host asks: "holds nothing" then means not yet.
      ...(downloading ? { downloading: true } : {}),
    };
  }

  /** A host's pull ended: a success makes it a holder; bad peers it reports feed nobody for a while. */
  finished(
    artifactId: string | undefined,
    hostId: string,
    succeeded: boolean,
    badPeers: readonly BadPeer[] = [],
  ): void {
    const swarm = artifactId === undefined ? undefined : this.swarms.get(artifactId);
    if (swarm?.tree.has(hostId)) {
      if (succeeded) swarm.tree.done(hostId);
      else swarm.tree.remove(hostId);
      swarm.touchedAt = this.now();
    }
    for (const bad of badPeers) {
      this.log.warn(
        { artifact: artifactId, reporter: hostId, peer: bad.hostId, reason: bad.reason },
        "a host reports a bad peer",
      );
      this.quarantined.set(bad.hostId, this.now() + BAD_PEER_QUARANTINE_MS);
    }
  }

  /** A command finished (a CommandService listener): a pull's outcome moves its transfer's tree. */
  onCommandFinished(record: CommandRecord): void {
    if (record.kind !== "pullImage") return;
    const badPeers = badPeersOf(record.result);
    // The transfer a host is still downloading in: one, but for a host given two pulls at once. Its
    // manifest is decoded only to tell those apart: a wave's thousands of pulls would each read their
    // command's body from the database and decode it, on the event loop the wave's reports wait for.
    const downloading = [...this.swarms].filter(
      ([, swarm]) => swarm.tree.has(record.hostId) && !swarm.tree.holds(record.hostId),
    );
    const only = downloading.length === 1 ? downloading[0] : undefined;
    const artifactId = only ? only[0] : downloading.length > 1 ? artifactIdOfPull(record) : undefined;
    if (artifactId === undefined && badPeers.length === 0) return;
    this.finished(artifactId, record.hostId, record.state === "succeeded", badPeers);
  }

  private expire(): void {
    const now = this.now();
    for (const [id, swarm] of this.swarms) if (now - swarm.touchedAt > SWARM_TTL_MS) this.swarms.delete(id);
    for (const [id, until] of this.quarantined) if (until <= now) this.quarantined.delete(id);
  }
}

/** The artifact id a PullImage command is for, from its signed manifest's bytes. */
export function artifactIdOfPull(record: CommandRecord): string | undefined {
  // Read once: a command kept without its body reads it from the database each time it is asked for.
  const command = record.command;
  if (!("pullImage" in command)) return undefined;
  try {
    return decodeManifest(command.pullImage.manifest).artifactId ?? undefined;
  } catch {
    return undefined;
  }
}

/** Bad peers a pull's stored result names (the result is stored as plain JSON). */
export function badPeersOf(result: unknown): BadPeer[] {
  const list = (result as { badPeers?: unknown } | null)?.badPeers;
  if (!Array.isArray(list)) return [];
  return list.flatMap((b: unknown) => {
    const { hostId, reason } = (b ?? {}) as { hostId?: unknown; reason?: unknown };
    return typeof hostId === "string" ? [{ hostId, reason: typeof reason === "string" ? reason : "" }] : [];
  });
}
