import { AppsRepo } from "./apps-repo.js";
import { ArtifactsRepo } from "./artifacts-repo.js";
import { AuditRepo } from "./audit-repo.js";
import { CommandsRepo } from "./commands-repo.js";
import { type DatabaseLocation, type Db, openDatabase } from "./db.js";
import { HostUpdatesRepo } from "./host-updates-repo.js";
import { HostsRepo } from "./hosts-repo.js";
import { ImagesRepo } from "./images-repo.js";
import { RolloutsRepo } from "./rollouts-repo.js";
import { SessionsRepo } from "./sessions-repo.js";
import { TokensRepo } from "./tokens-repo.js";
import { UsersRepo } from "./users-repo.js";
import { WindowsRepo } from "./windows-repo.js";
import { type TakenWrites, WriteBatch } from "./write-batch.js";

/** The controller's state in SQLite or PostgreSQL (db.ts), one repo per table. */
export class Store {
  readonly hosts: HostsRepo;
  readonly tokens: TokensRepo;
  readonly users: UsersRepo;
  readonly sessions: SessionsRepo;
  readonly images: ImagesRepo;
  readonly artifacts: ArtifactsRepo;
  readonly commands: CommandsRepo;
  readonly audit: AuditRepo;
  readonly apps: AppsRepo;
  readonly rollouts: RolloutsRepo;
  readonly hostUpdates: HostUpdatesRepo;
  readonly windows: WindowsRepo;
  /** Writes that wait for the end of the event-loop turn (write-batch.ts): statuses, inventories, commands. */
  readonly batch: WriteBatch;

  constructor(readonly db: Db) {
    this.batch = new WriteBatch({
      transaction: (fn, durable) => this.transaction(fn, { durable }),
      onFailure: (err, retryInMs) => this.onBatchFailure?.(err, retryInMs),
    });
    this.hosts = new HostsRepo(db, this.batch);
    this.tokens = new TokensRepo(db);
    this.users = new UsersRepo(db);
    this.sessions = new SessionsRepo(db);
    this.images = new ImagesRepo(db);
    this.artifacts = new ArtifactsRepo(db);
    this.commands = new CommandsRepo(db, this.batch);
    this.audit = new AuditRepo(db);
    this.apps = new AppsRepo(db);
    this.rollouts = new RolloutsRepo(db);
    this.hostUpdates = new HostUpdatesRepo(db);
    this.windows = new WindowsRepo(db);
  }

  /** Open the store: an SQLite file at `location` (a path), or the database it names. */
  static open(location: string | DatabaseLocation): Store {
    return new Store(
      openDatabase(typeof location === "string" ? { kind: "sqlite", path: location } : location),
    );
  }

  /** Told how long each transaction took, committed or not (seconds): the metrics' write latency. */
  onTransaction: ((seconds: number) => void) | undefined;

  /** Told when writing the batched writes failed; they wait and are tried again in retryInMs. */
  onBatchFailure: ((err: unknown, retryInMs: number) => void) | undefined;

  /**
   * Run `fn` in one transaction: everything it writes lands together or not at all, on disk when this
   * returns (unless `durable: false`). The batched writes waiting now land first, in the same
   * transaction (none is committed after a later write), and what waited for them runs once it commits.
   */
  transaction<T>(fn: () => T, options: { durable?: boolean } = {}): T {
    // Nested: a savepoint of the transaction that is open, which writes the batch itself.
    if (this.db.inTransaction) return this.db.transaction(fn);
    // Not durable: committed without waiting for the disk; the next durable commit makes it durable
    // too. Only for what agents report again.
    const durable = options.durable ?? true;
    const started = performance.now();
    const taken: TakenWrites = { taken: [], after: [] };
    let result: T;
    try {
      result = this.db.transaction(() => {
        this.batch.writeWaiting(taken);
        return fn();
      }, durable);
    } catch (err) {
      this.batch.rolledBack(taken);
      // The hosts and images kept in memory may hold a write that was just taken back.
      this.hosts.forget();
      this.images.forget();
      throw err;
    } finally {
      this.onTransaction?.((performance.now() - started) / 1000);
    }
    this.batch.committed(taken);
    return result;
  }

  /** Write what waits, then close the database. */
  close(): void {
    try {
      this.batch.close();
    } finally {
      this.db.close();
    }
  }
}
