import type { Role } from "./store/users-repo.js";

/**
 * Who may call each route, in one place: `public` needs no credential (health, enrollment, which
 * carries its own token); `host` is for agents, whose route checks the host credential itself
 * (host-auth.ts); `metrics` takes the scrape token or any user; the roles are ordered
 * viewer < operator < admin. A route missing here stops the controller from building (auth.ts), so
 * a new route cannot ship without a role. HEAD routes take their GET's.
 */
export type RouteAccess = Role | "public" | "metrics" | "host";

export const ROUTE_ROLES: Readonly<Record<string, RouteAccess>> = {
  "GET /healthz": "public",
  "POST /v1/enroll": "public",
  "GET /v1/enroll/ca": "public",
  "GET /metrics": "metrics",
  "POST /v1/agent/certificate": "host",

  // The dashboard's page and files hold no data (what they show comes from the routes below); sign-in
  // carries its own credential, the token in its body.
  "GET /": "public",
  "GET /assets/*": "public",
  "POST /v1/session": "public",
  "GET /v1/session": "viewer",
  "DELETE /v1/session": "viewer",

  "GET /v1/hosts": "viewer",
  "GET /v1/hosts/:name": "viewer",
  "DELETE /v1/hosts/:name": "admin",

  "GET /v1/tokens": "admin",
  "POST /v1/tokens": "admin",
  "DELETE /v1/tokens/:id": "admin",

  "GET /v1/users": "admin",
  "POST /v1/users": "admin",
  "POST /v1/users/:name/token": "admin",
  "DELETE /v1/users/:name": "admin",

  "GET /v1/images": "viewer",
  "POST /v1/images": "operator",
  "POST /v1/images/:line/update": "operator",
  "DELETE /v1/images/:line/:version": "operator",
  "POST /v1/images/:line/:version/evict": "operator",
  "POST /v1/images/:line/:version/push": "operator",

  "GET /v1/apps": "viewer",
  "POST /v1/apps": "operator",
  "GET /v1/apps/:name": "viewer",
  "DELETE /v1/apps/:name": "operator",
  "POST /v1/apps/:name/deploy": "operator",
  "POST /v1/apps/:name/hosts": "operator",
  "POST /v1/apps/:name/rollback": "operator",
  "GET /v1/apps/:name/logs": "viewer",

  "GET /v1/rollouts": "viewer",
  "POST /v1/rollouts": "operator",
  "POST /v1/rollouts/plan": "operator",
  "GET /v1/rollouts/:id": "viewer",
  "GET /v1/rollouts/:id/events": "viewer",
  "POST /v1/rollouts/:id/pause": "operator",
  "POST /v1/rollouts/:id/promote": "operator",
  "POST /v1/rollouts/:id/resume": "operator",
  "POST /v1/rollouts/:id/rollback": "operator",
  "POST /v1/rollouts/:id/abort": "operator",

  // A host update runs a command as root on hosts: that is managing hosts.
  "GET /v1/host-updates": "viewer",
  "POST /v1/host-updates": "admin",
  "POST /v1/host-updates/plan": "admin",
  "GET /v1/host-updates/:id": "viewer",
  "GET /v1/host-updates/:id/events": "viewer",
  "POST /v1/host-updates/:id/pause": "admin",
  "POST /v1/host-updates/:id/resume": "admin",
  "POST /v1/host-updates/:id/abort": "admin",

  "GET /v1/maintenance-windows": "viewer",
  "PUT /v1/maintenance-windows/:target": "admin",
  "DELETE /v1/maintenance-windows/:target": "admin",

  "GET /v1/audit": "viewer",
  "POST /v1/backups": "admin",
  "GET /v1/openapi.json": "viewer",
};

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether `role` may do what `needed` asks. */
export function roleAllows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** The table's key of a route: its method (HEAD as GET) and its path pattern. */
export function routeKey(method: string, url: string): string {
  return `${method === "HEAD" ? "GET" : method} ${url}`;
}
