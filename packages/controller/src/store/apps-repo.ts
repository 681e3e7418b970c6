import type { AppSpec } from "@gild/core";
import type { Db } from "./db.js";

export interface AppRecord {
  spec: AppSpec;
  createdBy: string | null;
  createdAt: number;
  updatedAt: number;
}

interface AppRow {
  name: string;
  spec: string;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

const fromRow = (row: AppRow): AppRecord => ({
  spec: JSON.parse(row.spec) as AppSpec,
  createdBy: row.created_by,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** App definitions (the validated spec as JSON). */
export class AppsRepo {
  constructor(private readonly db: Db) {}

  insert(spec: AppSpec, createdBy: string, now: number): boolean {
    return (
      this.db
        .prepare(
          "INSERT OR IGNORE INTO apps (name, spec, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .run(spec.name, JSON.stringify(spec), createdBy, now, now).changes === 1
    );
  }

  get(name: string): AppRecord | undefined {
    const row = this.db.prepare("SELECT * FROM apps WHERE name = ?").get(name) as AppRow | undefined;
    return row && fromRow(row);
  }

  list(): AppRecord[] {
    return (this.db.prepare("SELECT * FROM apps ORDER BY name").all() as AppRow[]).map(fromRow);
  }

  delete(name: string): boolean {
    return this.db.prepare("DELETE FROM apps WHERE name = ?").run(name).changes === 1;
  }
}
