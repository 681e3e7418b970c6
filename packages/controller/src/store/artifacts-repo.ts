import type { Db } from "./db.js";

/** A send stream written once to a file, with its signed manifest. */
export interface ArtifactRecord {
  id: string;
  line: string;
  version: number;
  /** 0 for a full stream. */
  parentVersion: number;
  streamVersion: number;
  sizeBytes: number;
  sha256: string;
  manifest: Buffer;
  signature: Buffer;
  createdAt: number;
}

interface ArtifactRow {
  id: string;
  line: string;
  version: number;
  parent_version: number;
  stream_version: number;
  size_bytes: number;
  sha256: string;
  manifest: Buffer;
  signature: Buffer;
  created_at: number;
}

const fromRow = (row: ArtifactRow): ArtifactRecord => ({
  id: row.id,
  line: row.line,
  version: row.version,
  parentVersion: row.parent_version,
  streamVersion: row.stream_version,
  sizeBytes: row.size_bytes,
  sha256: row.sha256,
  manifest: row.manifest,
  signature: row.signature,
  createdAt: row.created_at,
});

export class ArtifactsRepo {
  constructor(private readonly db: Db) {}

  insert(a: ArtifactRecord): void {
    this.db
      .prepare(
        `INSERT INTO artifacts (id, line, version, parent_version, stream_version, size_bytes, sha256, manifest, signature, created_at)
         VALUES (@id, @line, @version, @parentVersion, @streamVersion, @sizeBytes, @sha256, @manifest, @signature, @createdAt)`,
      )
      .run(a);
  }

  byId(id: string): ArtifactRecord | undefined {
    const row = this.db.prepare("SELECT * FROM artifacts WHERE id = ?").get(id) as ArtifactRow | undefined;
    return row && fromRow(row);
  }

  forImage(line: string, version: number): ArtifactRecord[] {
    return (
      this.db
        .prepare("SELECT * FROM artifacts WHERE line = ? AND version = ?")
        .all(line, version) as ArtifactRow[]
    ).map(fromRow);
  }

  delete(id: string): void {
    this.db.prepare("DELETE FROM artifacts WHERE id = ?").run(id);
  }
}
