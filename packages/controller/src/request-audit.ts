import type { Logger } from "@gild/core";
import type { AuditRepo } from "./store/audit-repo.js";
import { storeFailure } from "./store/store-errors.js";

/** Longest path an audit line keeps: a request path is the client's to choose. */
const MAX_AUDITED_PATH = 512;
/** At most one log line about refused requests per this long. */
const REFUSED_LOG_EVERY_MS = 60_000;
const PRUNE_EVERY_MS = 3_600_000;

/**
 * The audit log: what authenticated callers changed (a line per mutating request, its path bounded),
 * kept `retentionMs`; requests refused for want of a credential are only counted (a number, and a log
 * line at most once a minute), so that nobody without a token can grow the database.
 */
export class RequestAudit {
  private refused = 0;
  private refusedSinceLog = 0;
  private lastRefusedLog = 0;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(
    private readonly deps: {
      repo: AuditRepo;
      log: Logger;
      retentionMs: number;
      now?: () => number;
    },
  ) {
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Unauthenticated requests refused since the controller started. */
  get refusedCount(): number {
    return this.refused;
  }

  record(entry: {
    actor: string;
    method: string;
    path: string;
    status: number;
    summary: string | null;
  }): void {
    const path =
      entry.path.length > MAX_AUDITED_PATH ? `${entry.path.slice(0, MAX_AUDITED_PATH)}...` : entry.path;
    try {
      this.deps.repo.append({ ...entry, path, at: this.now() });
    } catch (err) {
      // The answer is out already; a full disk loses this audit line, not the request.
      const unwritable = storeFailure(err);
      if (!unwritable) throw err;
      this.deps.log.warn({ code: unwritable.code, path }, "could not write the audit log");
    }
  }

  refusedRequest(remote: string | undefined): void {
    this.refused++;
    this.refusedSinceLog++;
    const now = this.now();
    if (now - this.lastRefusedLog < REFUSED_LOG_EVERY_MS) return;
    this.deps.log.warn(
      { refused: this.refusedSinceLog, total: this.refused, lastRemote: remote },
      "refused requests without a valid credential",
    );
    this.lastRefusedLog = now;
    this.refusedSinceLog = 0;
  }

  /** Drop entries older than the retention (also every hour by itself). */
  prune(): void {
    try {
      const removed = this.deps.repo.pruneBefore(this.now() - this.deps.retentionMs);
      if (removed > 0) this.deps.log.info({ removed }, "pruned old audit entries");
    } catch (err) {
      if (!storeFailure(err)) throw err;
      this.deps.log.warn("could not prune the audit log: the store cannot write");
    }
  }

  close(): void {
    clearInterval(this.pruneTimer);
  }
}
