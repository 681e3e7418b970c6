import type { Db } from "./db.js";

/** One stored window rule: for a host name, or for a label selector (`role=web`). */
export interface WindowRule {
  /** A host name, or `key=value`. */
  target: string;
  spec: string;
  setBy: string | null;
  setAt: number;
}

interface WindowRow {
  target: string;
  spec: string;
  set_by: string | null;
  set_at: number;
}

/** Maintenance window rules (table maintenance_windows). */
export class WindowsRepo {
  constructor(private readonly db: Db) {}

  /** Set (or replace) the rule of a target. */
  set(rule: WindowRule): void {
    this.db
      .prepare(
        `INSERT INTO maintenance_windows (target, spec, set_by, set_at) VALUES (@target, @spec, @setBy, @setAt)
         ON CONFLICT (target) DO UPDATE SET spec = excluded.spec, set_by = excluded.set_by, set_at = excluded.set_at`,
      )
      .run(rule);
  }

  /** Remove a target's rule; false when it had none. */
  remove(target: string): boolean {
    return this.db.prepare("DELETE FROM maintenance_windows WHERE target = ?").run(target).changes > 0;
  }

  list(): WindowRule[] {
    return (this.db.prepare("SELECT * FROM maintenance_windows ORDER BY target").all() as WindowRow[]).map(
      (r) => ({ target: r.target, spec: r.spec, setBy: r.set_by, setAt: r.set_at }),
    );
  }
}
