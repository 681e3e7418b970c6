import type { Role, UsersRepo } from "./store/users-repo.js";

/** Who a token (or a session's token) stands for. */
export interface Identity {
  actor: string;
  role: Role;
  tokenHash: string;
  /** When the token stops working; null for never. */
  expiresAt: number | null;
}

/**
 * Who the token with this hash stands for (the bootstrap admin when `isAdmin`, which the caller
 * decided in constant time), or why it stands for nobody: the one rule for bearer tokens, sign-in and
 * sessions.
 */
export function identifyToken(
  hash: string,
  isAdmin: boolean,
  deps: { adminHash: string; users: UsersRepo; now: () => number },
): Identity | string {
  if (isAdmin) return { actor: "admin", role: "admin", tokenHash: deps.adminHash, expiresAt: null };
  const user = deps.users.byTokenHash(hash);
  if (!user) return "unknown token";
  if (user.expiresAt !== null && user.expiresAt <= deps.now())
    return `the token of user ${user.name} expired`;
  return { actor: user.name, role: user.role, tokenHash: user.tokenHash, expiresAt: user.expiresAt };
}
