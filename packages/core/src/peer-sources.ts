/**
 * Where each host of a transfer fetches an artifact's chunks from (docs/architecture.md, Peer fan-out).
 * Pure: hosts in the order they joined the transfer, who already holds the whole artifact, what was
 * already assigned -> for each newcomer an ordered source list, the controller always last.
 *
 * The hosts form a tree of bounded degree, filled breadth first: holders first (they have every chunk),
 * then the transfer's hosts in order, each taking at most `maxDegree` hosts as their primary source. A
 * host nobody can take is fed by the controller: in a wave with no holder that is only the first one
 * (and hosts that cannot serve: a protocol-1 agent, one without a peer server). Peers serve chunks
 * while they still download them, so the tree is a pipeline and the artifact leaves the controller
 * about once. Each host also gets one alternate (its grandparent, or another holder), used beside its
 * parent and in its place if it goes away; alternates have their own bound, so no host serves more
 * than 2 * maxDegree others at once.
 */

export type PeerSourceRef = { kind: "peer"; hostId: string } | { kind: "controller" };

export interface PeerParticipant {
  hostId: string;
  /** Runs a peer server the controller can name (protocol 2, a peer address known). */
  canServe: boolean;
}

export interface PeerPlanInput {
  /** Hosts that hold every verified chunk now (their peer cache): the best parents. */
  holders: readonly PeerParticipant[];
  /** Hosts already given sources earlier in this transfer, in the order they joined: fixed. */
  assigned: ReadonlyArray<PeerParticipant & { sources: readonly PeerSourceRef[] }>;
  /**
   * Hosts to plan now, in order. A host that cannot fetch from peers (protocol 1) gets the controller
   * and serves nobody, whatever canServe says.
   */
  newcomers: ReadonlyArray<PeerParticipant & { canFetch: boolean }>;
  /** Most hosts one host feeds as their primary source (and, apart, as their alternate). */
  maxDegree: number;
}

/** The degree of the tree when nobody says otherwise: depth log2 n, each upload link shared by 2. */
export const DEFAULT_PEER_DEGREE = 2;

const CONTROLLER: PeerSourceRef = { kind: "controller" };

/** For each newcomer, its ordered sources (parent, alternate, controller). Prefix-stable. */
export function planPeerSources(input: PeerPlanInput): Map<string, PeerSourceRef[]> {
  if (!Number.isInteger(input.maxDegree) || input.maxDegree < 1)
    throw new Error(`maxDegree must be a positive integer, not ${input.maxDegree}`);
  const primaryLoad = new Map<string, number>();
  const alternateLoad = new Map<string, number>();
  const parentOf = new Map<string, string>();
  const bump = (load: Map<string, number>, id: string) => load.set(id, (load.get(id) ?? 0) + 1);
  // Servers in breadth-first order: holders, then hosts in the order they joined.
  const servers: string[] = input.holders.filter((h) => h.canServe).map((h) => h.hostId);
  const holderIds = new Set(servers);
  for (const a of input.assigned) {
    const [first, second] = a.sources;
    if (first?.kind === "peer") {
      bump(primaryLoad, first.hostId);
      parentOf.set(a.hostId, first.hostId);
    }
    if (second?.kind === "peer") bump(alternateLoad, second.hostId);
    if (a.canServe && !holderIds.has(a.hostId)) servers.push(a.hostId);
  }
  const out = new Map<string, PeerSourceRef[]>();
  for (const host of input.newcomers) {
    if (out.has(host.hostId) || holderIds.has(host.hostId))
      throw new Error(`host ${host.hostId} is planned twice`);
    if (!host.canFetch) {
      out.set(host.hostId, [CONTROLLER]);
      continue;
    }
    const parent = servers.find((s) => s !== host.hostId && (primaryLoad.get(s) ?? 0) < input.maxDegree);
    const sources: PeerSourceRef[] = [];
    if (parent !== undefined) {
      bump(primaryLoad, parent);
      parentOf.set(host.hostId, parent);
      sources.push({ kind: "peer", hostId: parent });
      const grandparent = parentOf.get(parent);
      const alternates = [...(grandparent === undefined ? [] : [grandparent]), ...holderIds];
      const alternate = alternates.find(
        (s) => s !== parent && s !== host.hostId && (alternateLoad.get(s) ?? 0) < input.maxDegree,
      );
      if (alternate !== undefined) {
        bump(alternateLoad, alternate);
        sources.push({ kind: "peer", hostId: alternate });
      }
    }
    sources.push(CONTROLLER);
    out.set(host.hostId, sources);
    if (host.canServe) servers.push(host.hostId);
  }
  return out;
}
