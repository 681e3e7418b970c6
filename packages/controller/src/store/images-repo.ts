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
  constructor(private readonly db: Db) {}

  upsert(image: ImageRecord): void {
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
    const row = this.db.prepare("SELECT * FROM images WHERE line = ? AND version = ?").get(line, version) as
      | ImageRow
      | undefined;
    return row && fromRow(row);
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
    const rows =
      line === undefined
        ? this.db.prepare("SELECT * FROM images ORDER BY line, version").all()
        : this.db.prepare("SELECT * FROM images WHERE line = ? ORDER BY version").all(line);
    return (rows as ImageRow[]).map(fromRow);
  }

  /** The kind of a line (of its newest version), or undefined when the line has no version. */
  kindOf(line: string): LineKind | undefined {
    const row = this.db
      .prepare("SELECT kind FROM images WHERE line = ? ORDER BY version DESC LIMIT 1")
      .get(line) as { kind: string } | undefined;
    return row?.kind as LineKind | undefined;
  }

  setStatus(line: string, version: number, status: ImageStatus): void {
    this.db.prepare("UPDATE images SET status = ? WHERE line = ? AND version = ?").run(status, line, version);
  }

  delete(line: string, version: number): void {
    this.db.prepare("DELETE FROM images WHERE line = ? AND version = ?").run(line, version);
  }
}
