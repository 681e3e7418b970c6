import type { AppSpec } from "@gild/core";
import type { Db } from "./db.js";

/** The versions an app was last deployed or rolled out at (null: never). */
export interface AppVersions {
  image: number | null;
  code: number | null;
}

export interface AppRecord {
  spec: AppSpec;
  createdBy: string | null;
  createdAt: number;
  updatedAt: number;
  versions: AppVersions;
}

interface AppRow {
  name: string;
  spec: string;
  created_by: string | null;
  created_at: number;
  updated_at: number;
  image_version: number | null;
  code_version: number | null;
}

/** Specs stored before apps had code lack its fields: they are null. */
function withCodeFields(spec: Partial<AppSpec>): AppSpec {
  return { ...spec, code: spec.code ?? null, codeMount: spec.codeMount ?? null } as AppSpec;
}

const fromRow = (row: AppRow): AppRecord => ({
  spec: withCodeFields(JSON.parse(row.spec) as Partial<AppSpec>),
  createdBy: row.created_by,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  versions: { image: row.image_version, code: row.code_version },
});

/** App definitions (the validated spec as JSON). */
export class AppsRepo {
  constructor(private readonly db: Db) {}

  insert(spec: AppSpec, createdBy: string, now: number): boolean {
    return (
      this.db
        .prepare(
          "INSERT INTO apps (name, spec, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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

  /** Replace an app's spec (its name stays); false when there is no such app. */
  updateSpec(spec: AppSpec, now: number): boolean {
    return (
      this.db
        .prepare("UPDATE apps SET spec = ?, updated_at = ? WHERE name = ?")
        .run(JSON.stringify(spec), now, spec.name).changes === 1
    );
  }

  /** Remember the versions an app now runs at; a null leaves that one as it was. */
  setVersions(name: string, versions: Partial<AppVersions>): void {
    this.db
      .prepare(
        "UPDATE apps SET image_version = COALESCE(?, image_version), code_version = COALESCE(?, code_version) WHERE name = ?",
      )
      .run(versions.image ?? null, versions.code ?? null, name);
  }

  delete(name: string): boolean {
    return this.db.prepare("DELETE FROM apps WHERE name = ?").run(name).changes === 1;
  }
}
