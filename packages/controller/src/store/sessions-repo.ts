import type { Db } from "./db.js";
import type { Role } from "./users-repo.js";

/** A dashboard session as stored: found by the hash of the cookie's id. */
export interface SessionRecord {
  idHash: string;
  /** A user's name, or `admin` for the bootstrap admin token. */
  actor: string;
  role: Role;
  /** The hash of the token the session was opened with: it holds only while that token does. */
  tokenHash: string;
  createdAt: number;
  expiresAt: number;
}

interface SessionRow {
  id_hash: string;
  actor: string;
  role: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
}

/** Dashboard sessions (cookie ids are random; the table keeps their sha256). */
export class SessionsRepo {
  constructor(private readonly db: Db) {}

  insert(session: SessionRecord): void {
    this.db
      .prepare(
        `INSERT INTO sessions (id_hash, actor, role, token_hash, created_at, expires_at)
         VALUES (@idHash, @actor, @role, @tokenHash, @createdAt, @expiresAt)`,
      )
      .run(session);
  }

  byIdHash(idHash: string): SessionRecord | undefined {
    const row = this.db.prepare("SELECT * FROM sessions WHERE id_hash = ?").get(idHash) as
      | SessionRow
      | undefined;
    return (
      row && {
        idHash: row.id_hash,
        actor: row.actor,
        role: row.role as Role,
        tokenHash: row.token_hash,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
      }
    );
  }

  delete(idHash: string): void {
    this.db.prepare("DELETE FROM sessions WHERE id_hash = ?").run(idHash);
  }

  /** End every session of a user (removed, or its token rotated). */
  deleteForActor(actor: string): number {
    return this.db.prepare("DELETE FROM sessions WHERE actor = ?").run(actor).changes;
  }

  /** Drop the sessions that expired before `now`. */
  prune(now: number): number {
    return this.db.prepare("DELETE FROM sessions WHERE expires_at <= ?").run(now).changes;
  }
}
