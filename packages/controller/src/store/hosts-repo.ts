import type { AppInstance, Inventory } from "@gild/protocol";
import type { Db } from "./db.js";

/**
 * What a host reported of its pool and apps, as stored: the agent's Inventory with each app's health
 * streak on the controller's clock (healthSinceMs; inventory-sync.ts turns healthyForMs into it).
 */
export type HostInventory = Omit<Inventory, "apps"> & { apps: Array<Omit<AppInstance, "healthyForMs">> };

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

/** Joined hosts and their hashed credentials. */
export class HostsRepo {
  constructor(private readonly db: Db) {}

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
  }

  byId(id: string): HostRecord | undefined {
    const row = this.db.prepare("SELECT * FROM hosts WHERE id = ?").get(id) as HostRow | undefined;
    return row && fromRow(row);
  }

  byName(name: string): HostRecord | undefined {
    const row = this.db.prepare("SELECT * FROM hosts WHERE name = ?").get(name) as HostRow | undefined;
    return row && fromRow(row);
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

  list(): HostRecord[] {
    return (this.db.prepare("SELECT * FROM hosts ORDER BY name").all() as HostRow[]).map(fromRow);
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
  }

  setInventory(id: string, inventory: HostInventory): void {
    this.db.prepare("UPDATE hosts SET inventory = ? WHERE id = ?").run(JSON.stringify(inventory), id);
  }

  delete(id: string): boolean {
    return this.db.prepare("DELETE FROM hosts WHERE id = ?").run(id).changes === 1;
  }
}
