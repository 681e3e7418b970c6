import type { ImageView } from "@gild/api-client";
import type { ImageOrigin, ImageStatus, LineKind } from "@gild/core";
import type { Db } from "./db.js";

/**
 * An image version as the controller tracks it: the pool holds the bytes, this its status. It is what
 * the API answers (`ImageView`) without the hosts that have it.
 */
export type ImageRecord = Omit<ImageView, "hosts">;

interface ImageRow {
  line: string;
  version: number;
  kind: string;
  uuid: string;
  status: string;
  parent: number | null;
  size_bytes: number | null;
  origin: string | null;
  created_by: string | null;
  created_at: number;
}

const fromRow = (row: ImageRow): ImageRecord => ({
  line: row.line,
  version: row.version,
  kind: row.kind as LineKind,
  uuid: row.uuid,
  status: row.status as ImageStatus,
  parent: row.parent,
  sizeBytes: row.size_bytes,
  origin: row.origin === null ? null : (JSON.parse(row.origin) as ImageOrigin),
  createdBy: row.created_by,
  createdAt: row.created_at,
});

export class ImagesRepo {
  /**
   * Each line's versions as stored, read once: a wave's pulls each look at the line (10,000 reads of
   * the same rows at a wave's start, each a round trip with PostgreSQL). Only this repository writes
   * the table, and a write forgets its line; a transaction that rolls back forgets them all.
   */
  private readonly lines = new Map<string, readonly ImageRecord[]>();

  constructor(private readonly db: Db) {}

  /** Forget what was read (a transaction that wrote some of it rolled back). */
  forget(): void {
    this.lines.clear();
  }

  private ofLine(line: string): readonly ImageRecord[] {
    let versions = this.lines.get(line);
    if (versions === undefined) {
      versions = (
        this.db.prepare("SELECT * FROM images WHERE line = ? ORDER BY version").all(line) as ImageRow[]
      ).map(fromRow);
      this.lines.set(line, versions);
    }
    return versions;
  }

  upsert(image: ImageRecord): void {
    this.lines.delete(image.line);
    this.db
      .prepare(
        `INSERT INTO images (line, version, kind, uuid, status, parent, size_bytes, origin, created_by, created_at)
         VALUES (@line, @version, @kind, @uuid, @status, @parent, @sizeBytes, @origin, @createdBy, @createdAt)
         ON CONFLICT (line, version) DO UPDATE SET kind = excluded.kind, uuid = excluded.uuid, parent = excluded.parent,
           size_bytes = excluded.size_bytes, origin = excluded.origin, created_by = excluded.created_by,
           created_at = excluded.created_at`,
      )
      .run({ ...image, origin: image.origin === null ? null : JSON.stringify(image.origin) });
  }

  get(line: string, version: number): ImageRecord | undefined {
    return this.ofLine(line).find((image) => image.version === version);
  }

  /** How many there are in each status, for the metrics. */
  countsByStatus(): Map<string, number> {
    const rows = this.db
      .prepare("SELECT status AS k, COUNT(*) AS n FROM images GROUP BY status")
      .all() as Array<{
      k: string;
      n: number;
    }>;
    return new Map(rows.map((r) => [r.k, r.n]));
  }

  list(line?: string): ImageRecord[] {
    if (line !== undefined) return [...this.ofLine(line)];
    return (this.db.prepare("SELECT * FROM images ORDER BY line, version").all() as ImageRow[]).map(fromRow);
  }

  /** The kind of a line (of its newest version), or undefined when the line has no version. */
  kindOf(line: string): LineKind | undefined {
    return this.ofLine(line).at(-1)?.kind;
  }

  setStatus(line: string, version: number, status: ImageStatus): void {
    this.lines.delete(line);
    this.db.prepare("UPDATE images SET status = ? WHERE line = ? AND version = ?").run(status, line, version);
  }

  delete(line: string, version: number): void {
    this.lines.delete(line);
    this.db.prepare("DELETE FROM images WHERE line = ? AND version = ?").run(line, version);
  }
}
