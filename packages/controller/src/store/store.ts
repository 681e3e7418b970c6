import { AppsRepo } from "./apps-repo.js";
import { ArtifactsRepo } from "./artifacts-repo.js";
import { AuditRepo } from "./audit-repo.js";
import { CommandsRepo } from "./commands-repo.js";
import { type Db, openDatabase } from "./db.js";
import { HostUpdatesRepo } from "./host-updates-repo.js";
import { HostsRepo } from "./hosts-repo.js";
import { ImagesRepo } from "./images-repo.js";
import { RolloutsRepo } from "./rollouts-repo.js";
import { SessionsRepo } from "./sessions-repo.js";
import { TokensRepo } from "./tokens-repo.js";
import { UsersRepo } from "./users-repo.js";
import { WindowsRepo } from "./windows-repo.js";

/** The controller's state in SQLite, one repo per table. */
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

  constructor(readonly db: Db) {
    this.hosts = new HostsRepo(db);
    this.tokens = new TokensRepo(db);
    this.users = new UsersRepo(db);
    this.sessions = new SessionsRepo(db);
    this.images = new ImagesRepo(db);
    this.artifacts = new ArtifactsRepo(db);
    this.commands = new CommandsRepo(db);
    this.audit = new AuditRepo(db);
    this.apps = new AppsRepo(db);
    this.rollouts = new RolloutsRepo(db);
    this.hostUpdates = new HostUpdatesRepo(db);
    this.windows = new WindowsRepo(db);
  }

  static open(path: string): Store {
    return new Store(openDatabase(path));
  }

  /** Told how long each transaction took, committed or not (seconds): the metrics' write latency. */
  onTransaction: ((seconds: number) => void) | undefined;

  /** Run `fn` in one transaction: everything it writes lands together or not at all. */
  transaction<T>(fn: () => T): T {
    const started = performance.now();
    try {
      return this.db.transaction(fn)();
    } finally {
      this.onTransaction?.((performance.now() - started) / 1000);
    }
  }

  close(): void {
    this.db.close();
  }
}
