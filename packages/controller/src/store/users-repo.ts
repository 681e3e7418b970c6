import type { Db } from "./db.js";

/** What an operator may do: viewer reads; operator drives images, apps and rollouts; admin all. */
export type Role = "viewer" | "operator" | "admin";

export const ROLES: readonly Role[] = ["viewer", "operator", "admin"];

export interface UserRecord {
  name: string;
  role: Role;
  tokenHash: string;
  createdAt: number;
  createdBy: string | null;
  /** When the current token was made (at creation or the last rotation). */
  tokenCreatedAt: number;
  /** When the current token stops working; null for never. */
  expiresAt: number | null;
}

interface UserRow {
  name: string;
  role: string;
  token_hash: string;
  created_at: number;
  created_by: string | null;
  token_created_at: number;
  expires_at: number | null;
}

const fromRow = (row: UserRow): UserRecord => ({
  name: row.name,
  role: row.role as Role,
  tokenHash: row.token_hash,
  createdAt: row.created_at,
  createdBy: row.created_by,
  tokenCreatedAt: row.token_created_at,
  expiresAt: row.expires_at,
});

/** Named operators and the hashes of their tokens. */
export class UsersRepo {
  constructor(private readonly db: Db) {}

  insert(user: UserRecord): void {
    this.db
      .prepare(
        `INSERT INTO users (name, role, token_hash, created_at, created_by, token_created_at, expires_at)
         VALUES (@name, @role, @tokenHash, @createdAt, @createdBy, @tokenCreatedAt, @expiresAt)`,
      )
      .run(user);
  }

  byName(name: string): UserRecord | undefined {
    const row = this.db.prepare("SELECT * FROM users WHERE name = ?").get(name) as UserRow | undefined;
    return row && fromRow(row);
  }

  byTokenHash(hash: string): UserRecord | undefined {
    const row = this.db.prepare("SELECT * FROM users WHERE token_hash = ?").get(hash) as UserRow | undefined;
    return row && fromRow(row);
  }

  list(): UserRecord[] {
    return (this.db.prepare("SELECT * FROM users ORDER BY name").all() as UserRow[]).map(fromRow);
  }

  /** A new token for the user (the old one stops working at once). */
  setToken(
    name: string,
    token: { tokenHash: string; tokenCreatedAt: number; expiresAt: number | null },
  ): void {
    this.db
      .prepare(
        "UPDATE users SET token_hash = @tokenHash, token_created_at = @tokenCreatedAt, expires_at = @expiresAt WHERE name = @name",
      )
      .run({ name, ...token });
  }

  delete(name: string): boolean {
    return this.db.prepare("DELETE FROM users WHERE name = ?").run(name).changes > 0;
  }
}
