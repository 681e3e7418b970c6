import type { AppInstance, Inventory } from "@gild/protocol";
import type { Db } from "./db.js";
import type { WriteBatch } from "./write-batch.js";

/**
 * What a host reported of its pool and apps, as stored: the agent's Inventory with each app's health
 * streak on the controller's clock (healthSinceMs; inventory-sync.ts turns healthyForMs into it).
 */
export type HostInventory = Omit<Inventory, "apps"> & {
  apps: Array<
    Omit<AppInstance, "healthyForMs"> & {
      /** The streak's start as the agent gave it, on its clock: which streak it is (inventory-sync.ts). */
      agentHealthSinceMs?: number;
    }
  >;
};

export type HostState = "online" | "offline";

export interface HostRecord {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: HostState;
  lastSeen: number | null;
  joinedAt: number;
  agentVersion: string | null;
  /** The protocol version the agent last said it speaks (1 for hosts never seen since protocol 2). */
  protocolVersion: number;
  kernelVersion: string | null;
  btrfsProgsVersion: string | null;
  maxStreamVersion: number;
  facts: Record<string, string>;
  inventory: HostInventory | null;
}

interface HostRow {
  id: string;
  name: string;
  labels: string;
  state: string;
  last_seen: number | null;
  joined_at: number;
  agent_version: string | null;
  protocol_version: number;
  kernel_version: string | null;
  btrfs_progs_version: string | null;
  max_stream_version: number;
  facts: string;
  inventory: string | null;
}

function fromRow(row: HostRow): HostRecord {
  return {
    id: row.id,
    name: row.name,
    labels: JSON.parse(row.labels) as Record<string, string>,
    state: row.state === "online" ? "online" : "offline",
    lastSeen: row.last_seen,
    joinedAt: row.joined_at,
    agentVersion: row.agent_version,
    protocolVersion: row.protocol_version,
    kernelVersion: row.kernel_version,
    btrfsProgsVersion: row.btrfs_progs_version,
    maxStreamVersion: row.max_stream_version,
    facts: JSON.parse(row.facts) as Record<string, string>,
    inventory: row.inventory === null ? null : (JSON.parse(row.inventory) as HostInventory),
  };
}

/** Every host as stored, read once: by id, ids by name, and ids in name order (made when asked for). */
interface HostCache {
  byId: Map<string, HostRecord>;
  byName: Map<string, string>;
  order: string[] | undefined;
}

/**
 * Joined hosts and their hashed credentials. Every host is kept in memory as stored (read once; only
 * this repository writes the table, and only this process the database), so a planning step that
 * looks at 10,000 hosts parses none of them. Inventories wait in memory for the store's batch
 * (write-batch.ts), which writes them once per event-loop turn.
 */
export class HostsRepo {
  /** Inventories stored since the last flush, by host id. */
  private waiting = new Map<string, HostInventory>();
  private cache: HostCache | undefined;

  constructor(
    private readonly db: Db,
    private readonly batch: WriteBatch,
  ) {
    batch.register<Map<string, HostInventory>>({
      take: () => {
        const taken = this.waiting;
        this.waiting = new Map();
        return taken;
      },
      write: (taken) => {
        this.db.runMany(
          "UPDATE hosts SET inventory = ? WHERE id = ?",
          Array.from(taken, ([id, inventory]) => [JSON.stringify(inventory), id]),
        );
      },
      restore: (taken) => {
        for (const [id, inventory] of taken) if (!this.waiting.has(id)) this.waiting.set(id, inventory);
      },
    });
  }

  private hosts(): HostCache {
    if (this.cache === undefined) {
      const rows = this.db.prepare("SELECT * FROM hosts ORDER BY name").all() as HostRow[];
      const byId = new Map<string, HostRecord>();
      const byName = new Map<string, string>();
      for (const row of rows) {
        const host = fromRow(row);
        const waiting = this.waiting.get(host.id);
        byId.set(host.id, waiting === undefined ? host : { ...host, inventory: waiting });
        byName.set(host.name, host.id);
      }
      this.cache = { byId, byName, order: rows.map((r) => r.id) };
    }
    return this.cache;
  }

  /** A write was committed (or is certain to be): the host's record as it is now. */
  private update(id: string, change: Partial<HostRecord>): void {
    const cache = this.cache;
    const host = cache?.byId.get(id);
    if (cache && host) cache.byId.set(id, { ...host, ...change });
  }

  /** Forget what is kept in memory (a transaction that wrote to hosts rolled back): read it again. */
  forget(): void {
    this.cache = undefined;
  }

  insert(host: {
    id: string;
    name: string;
    labels: Record<string, string>;
    credentialHash: string;
    joinedAt: number;
  }): void {
    this.db
      .prepare(
        "INSERT INTO hosts (id, name, labels, credential_hash, joined_at) VALUES (@id, @name, @labels, @credentialHash, @joinedAt)",
      )
      .run({ ...host, labels: JSON.stringify(host.labels) });
    const cache = this.cache;
    if (cache === undefined) return;
    const row = this.db.prepare("SELECT * FROM hosts WHERE id = ?").get(host.id) as HostRow;
    cache.byId.set(host.id, fromRow(row));
    cache.byName.set(host.name, host.id);
    cache.order = undefined;
  }

  byId(id: string): HostRecord | undefined {
    return this.hosts().byId.get(id);
  }

  /**
   * Every host by id, as kept in memory: read it now, do not hold on to it (a later write replaces
   * the record it holds; a forgotten cache is a new map). A planning step reads it once per step.
   */
  byIdNow(): ReadonlyMap<string, HostRecord> {
    return this.hosts().byId;
  }

  byName(name: string): HostRecord | undefined {
    const cache = this.hosts();
    const id = cache.byName.get(name);
    return id === undefined ? undefined : cache.byId.get(id);
  }

  /** Host id -> name for every host, without reading the rest of each row. */
  names(): Map<string, string> {
    const rows = this.db.prepare("SELECT id, name FROM hosts").all() as { id: string; name: string }[];
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  /** How many there are in each state, for the metrics. */
  countsByState(): Map<string, number> {
    const rows = this.db
      .prepare("SELECT state AS k, COUNT(*) AS n FROM hosts GROUP BY state")
      .all() as Array<{
      k: string;
      n: number;
    }>;
    return new Map(rows.map((r) => [r.k, r.n]));
  }

  /** Every host, by name. */
  list(): HostRecord[] {
    const cache = this.hosts();
    cache.order ??= [...cache.byId.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((h) => h.id);
    return cache.order.map((id) => cache.byId.get(id) as HostRecord);
  }

  credentialHash(id: string): string | undefined {
    return (
      this.db.prepare("SELECT credential_hash FROM hosts WHERE id = ?").get(id) as
        | { credential_hash: string }
        | undefined
    )?.credential_hash;
  }

  /** Write online/offline and last seen; callers only call it when the state changes. */
  setState(id: string, state: HostState, lastSeen: number): void {
    this.db.prepare("UPDATE hosts SET state = ?, last_seen = ? WHERE id = ?").run(state, lastSeen, id);
    this.update(id, { state, lastSeen });
  }

  setHello(
    id: string,
    hello: {
      agentVersion: string;
      protocolVersion: number;
      kernelVersion: string;
      btrfsProgsVersion: string;
      maxStreamVersion: number;
      facts: Record<string, string>;
    },
  ): void {
    this.db
      .prepare(
        "UPDATE hosts SET agent_version = ?, protocol_version = ?, kernel_version = ?, btrfs_progs_version = ?, max_stream_version = ?, facts = ? WHERE id = ?",
      )
      .run(
        hello.agentVersion,
        hello.protocolVersion,
        hello.kernelVersion,
        hello.btrfsProgsVersion,
        hello.maxStreamVersion,
        JSON.stringify(hello.facts),
        id,
      );
    this.update(id, {
      agentVersion: hello.agentVersion,
      protocolVersion: hello.protocolVersion,
      kernelVersion: hello.kernelVersion,
      btrfsProgsVersion: hello.btrfsProgsVersion,
      maxStreamVersion: hello.maxStreamVersion,
      facts: { ...hello.facts },
    });
  }

  /** Keep a host's inventory; the batch writes it at the end of this event-loop turn. */
  setInventory(id: string, inventory: HostInventory): void {
    this.waiting.set(id, inventory);
    this.update(id, { inventory });
    this.batch.schedule();
  }

  delete(id: string): boolean {
    this.waiting.delete(id);
    this.cache = undefined;
    return this.db.prepare("DELETE FROM hosts WHERE id = ?").run(id).changes === 1;
  }
}
