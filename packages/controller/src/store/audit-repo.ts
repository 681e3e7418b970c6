import type { AuditEntry } from "@gild/api-client";
import type { Db } from "./db.js";

/** Append-only record of every mutating API call: who, what, when, result. */
export class AuditRepo {
  constructor(private readonly db: Db) {}

  append(entry: Omit<AuditEntry, "id">): void {
    this.db
      .prepare(
        "INSERT INTO audit (at, actor, method, path, status, summary) VALUES (@at, @actor, @method, @path, @status, @summary)",
      )
      .run(entry);
  }

  /** Drop entries older than `before`; returns how many. */
  pruneBefore(before: number): number {
    return this.db.prepare("DELETE FROM audit WHERE at < ?").run(before).changes;
  }

  list(options: { limit?: number; since?: number } = {}): AuditEntry[] {
    return this.db
      .prepare("SELECT * FROM audit WHERE at >= ? ORDER BY id DESC LIMIT ?")
      .all(options.since ?? 0, options.limit ?? 100) as AuditEntry[];
  }
}
