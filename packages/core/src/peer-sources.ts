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

/**
 * Servers of one kind of load, in the order they may be picked, with a cursor before which every one
 * is full or gone: a pick looks at each full server once, not once per newcomer (a wave of n hosts
 * costs about n, not n^2). Servers behind the cursor that may have room again (a host they fed finished
 * or left) or that could not serve when last looked at are kept apart and looked at first; they are few.
 */
class ServerQueue {
  private readonly ids: Array<string | null> = [];
  private readonly index = new Map<string, number>();
  private cursor = 0;
  /** Indices behind the cursor that may be picked again. */
  private readonly behind = new Set<number>();

  push(id: string): void {
    this.index.set(id, this.ids.length);
    this.ids.push(id);
  }

  remove(id: string): void {
    const i = this.index.get(id);
    if (i === undefined) return;
    this.ids[i] = null;
    this.index.delete(id);
    this.behind.delete(i);
  }

  /** `id` may have room again. */
  reopen(id: string): void {
    const i = this.index.get(id);
    if (i !== undefined && i < this.cursor) this.behind.add(i);
  }

  /** The first server in order that is not full and that `ok` takes. */
  find(full: (id: string) => boolean, ok: (id: string) => boolean): string | undefined {
    let best: number | undefined;
    for (const i of this.behind) {
      const id = this.ids[i];
      if (id === null || id === undefined || full(id)) this.behind.delete(i);
      else if (ok(id) && (best === undefined || i < best)) best = i;
    }
    while (this.cursor < this.ids.length) {
      const i = this.cursor;
      const id = this.ids[i];
      if (id === null || id === undefined || full(id)) {
        this.cursor++;
        continue;
      }
      if (ok(id)) {
        if (best === undefined || i < best) best = i;
        break;
      }
      // Not full, but not to be picked now (it cannot serve, or is excluded): looked at again later.
      this.behind.add(i);
      this.cursor++;
    }
    return best === undefined ? undefined : (this.ids[best] ?? undefined);
  }
}

interface TreeMember {
  sources: PeerSourceRef[];
  /** Could serve when it joined: the only members ever named as a source. */
  server: boolean;
  done: boolean;
}

/**
 * One transfer's tree, kept up to date as hosts join, finish and leave: each newcomer is planned in
 * about constant time whatever the size of the wave. Whether a host may serve is asked when it would be
 * picked (`canServe`), so one that went away or was reported bad feeds nobody new. Holders (hosts that
 * finished) come first, in the order they finished, then the others in the order they joined; a host
 * that finished no longer counts toward its parent's load.
 */
export class PeerTree {
  private readonly members = new Map<string, TreeMember>();
  private readonly primaryLoad = new Map<string, number>();
  private readonly alternateLoad = new Map<string, number>();
  private readonly holdersPrimary = new ServerQueue();
  private readonly holdersAlternate = new ServerQueue();
  private readonly joinersPrimary = new ServerQueue();

  constructor(
    private readonly maxDegree: number,
    private readonly canServe: (hostId: string) => boolean,
  ) {
    if (!Number.isInteger(maxDegree) || maxDegree < 1)
      throw new Error(`maxDegree must be a positive integer, not ${maxDegree}`);
  }

  has(hostId: string): boolean {
    return this.members.has(hostId);
  }

  /** The host holds every chunk (a holder, or done); false while it still downloads, or unknown. */
  holds(hostId: string): boolean {
    return this.members.get(hostId)?.done === true;
  }

  /** A host that holds every chunk already (before this tree knew it). */
  addHolder(hostId: string): void {
    this.members.set(hostId, { sources: [], server: true, done: true });
    this.holdersPrimary.push(hostId);
    this.holdersAlternate.push(hostId);
  }

  /** A host given `sources` earlier: it keeps them, and they count toward its sources' loads. */
  addAssigned(hostId: string, server: boolean, sources: readonly PeerSourceRef[]): void {
    const member: TreeMember = { sources: [...sources], server, done: false };
    this.members.set(hostId, member);
    this.count(member, 1);
    if (server) this.joinersPrimary.push(hostId);
  }

  /** Plan a newcomer: its ordered sources (parent, alternate, controller). */
  add(host: PeerParticipant & { canFetch: boolean }): PeerSourceRef[] {
    if (this.members.has(host.hostId)) throw new Error(`host ${host.hostId} is planned twice`);
    if (!host.canFetch) {
      this.members.set(host.hostId, { sources: [CONTROLLER], server: false, done: false });
      return [CONTROLLER];
    }
    const sources: PeerSourceRef[] = [];
    const fullPrimary = (id: string) => (this.primaryLoad.get(id) ?? 0) >= this.maxDegree;
    const fullAlternate = (id: string) => (this.alternateLoad.get(id) ?? 0) >= this.maxDegree;
    const serves = (id: string) => id !== host.hostId && this.canServe(id);
    const parent =
      this.holdersPrimary.find(fullPrimary, serves) ?? this.joinersPrimary.find(fullPrimary, serves);
    if (parent !== undefined) {
      sources.push({ kind: "peer", hostId: parent });
      // The alternate: the parent's own parent, or else another holder.
      const grandparent = this.parentOf(parent);
      const alternate =
        grandparent !== undefined &&
        grandparent !== host.hostId &&
        !fullAlternate(grandparent) &&
        this.canServe(grandparent)
          ? grandparent
          : this.holdersAlternate.find(fullAlternate, (id) => id !== parent && serves(id));
      if (alternate !== undefined) sources.push({ kind: "peer", hostId: alternate });
    }
    sources.push(CONTROLLER);
    const member: TreeMember = { sources, server: host.canServe, done: false };
    this.members.set(host.hostId, member);
    this.count(member, 1);
    if (host.canServe) this.joinersPrimary.push(host.hostId);
    return sources;
  }

  /** The host holds every chunk now: it feeds others before the hosts still downloading. */
  done(hostId: string): void {
    const member = this.members.get(hostId);
    if (!member || member.done) return;
    this.count(member, -1);
    member.done = true;
    this.joinersPrimary.remove(hostId);
    if (member.server) {
      this.holdersPrimary.push(hostId);
      this.holdersAlternate.push(hostId);
    }
  }

  /** The host left the transfer (it failed, or pulls again and is planned anew). */
  remove(hostId: string): void {
    const member = this.members.get(hostId);
    if (!member) return;
    if (!member.done) this.count(member, -1);
    this.members.delete(hostId);
    this.joinersPrimary.remove(hostId);
    this.holdersPrimary.remove(hostId);
    this.holdersAlternate.remove(hostId);
  }

  /** A host's parent while it downloads (a holder has none). */
  private parentOf(hostId: string): string | undefined {
    const member = this.members.get(hostId);
    const first = member && !member.done ? member.sources[0] : undefined;
    return first?.kind === "peer" ? first.hostId : undefined;
  }

  /** Add (+1) or take back (-1) what a downloading member's sources carry. */
  private count(member: TreeMember, delta: 1 | -1): void {
    const [first, second] = member.sources;
    if (first?.kind === "peer") {
      this.primaryLoad.set(first.hostId, (this.primaryLoad.get(first.hostId) ?? 0) + delta);
      if (delta < 0) {
        this.holdersPrimary.reopen(first.hostId);
        this.joinersPrimary.reopen(first.hostId);
      }
    }
    if (second?.kind === "peer") {
      this.alternateLoad.set(second.hostId, (this.alternateLoad.get(second.hostId) ?? 0) + delta);
      if (delta < 0) this.holdersAlternate.reopen(second.hostId);
    }
  }
}

/**
 * For each newcomer, its ordered sources (parent, alternate, controller). Prefix-stable. The same
 * planning as a PeerTree given the holders and the assigned hosts first.
 */
export function planPeerSources(input: PeerPlanInput): Map<string, PeerSourceRef[]> {
  const serving = new Map<string, boolean>();
  for (const h of input.holders) serving.set(h.hostId, h.canServe);
  for (const a of input.assigned) serving.set(a.hostId, a.canServe);
  for (const n of input.newcomers) if (!serving.has(n.hostId)) serving.set(n.hostId, n.canServe);
  const tree = new PeerTree(input.maxDegree, (id) => serving.get(id) === true);
  for (const h of input.holders) if (h.canServe) tree.addHolder(h.hostId);
  for (const a of input.assigned) tree.addAssigned(a.hostId, a.canServe, a.sources);
  const out = new Map<string, PeerSourceRef[]>();
  // The tree refuses a host planned twice.
  for (const host of input.newcomers) out.set(host.hostId, tree.add(host));
  return out;
}
