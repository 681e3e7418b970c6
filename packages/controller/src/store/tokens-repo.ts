import type { Db } from "./db.js";

export interface JoinTokenRecord {
  id: string;
  secretHash: string;
  createdAt: number;
  expiresAt: number;
  createdBy: string | null;
  usedAt: number | null;
  usedBy: string | null;
}

interface TokenRow {
  id: string;
  secret_hash: string;
  created_at: number;
  expires_at: number;
  created_by: string | null;
  used_at: number | null;
  used_by: string | null;
}

const fromRow = (row: TokenRow): JoinTokenRecord => ({
  id: row.id,
  secretHash: row.secret_hash,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  createdBy: row.created_by,
  usedAt: row.used_at,
  usedBy: row.used_by,
});

/** One-time join tokens (only the hash of the secret is kept). */
export class TokensRepo {
  constructor(private readonly db: Db) {}

  insert(token: {
    id: string;
    secretHash: string;
    createdAt: number;
    expiresAt: number;
    createdBy: string;
  }): void {
    this.db
      .prepare(
        "INSERT INTO join_tokens (id, secret_hash, created_at, expires_at, created_by) VALUES (@id, @secretHash, @createdAt, @expiresAt, @createdBy)",
      )
      .run(token);
  }

  byId(id: string): JoinTokenRecord | undefined {
    const row = this.db.prepare("SELECT * FROM join_tokens WHERE id = ?").get(id) as TokenRow | undefined;
    return row && fromRow(row);
  }

  /** Mark used, atomically: false when someone used it first. */
  markUsed(id: string, at: number, by: string): boolean {
    return (
      this.db
        .prepare("UPDATE join_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL")
        .run(at, by, id).changes === 1
    );
  }

  list(): JoinTokenRecord[] {
    return (this.db.prepare("SELECT * FROM join_tokens ORDER BY created_at DESC").all() as TokenRow[]).map(
      fromRow,
    );
  }

  delete(id: string): boolean {
    return this.db.prepare("DELETE FROM join_tokens WHERE id = ?").run(id).changes === 1;
  }
}
