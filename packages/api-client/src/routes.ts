// Every route of the controller's admin API: its request and its answer. JSON routes answer `response`;
// long ones answer NDJSON lines of `event` and end with `result` (ControllerClient.stream).
import type {
  HostUpdateEvent,
  HostUpdateVerb,
  LineKind,
  RolloutEvent,
  RolloutVerb,
  SerializedError,
} from "@gild/core";
import type {
  AppView,
  AuditEntry,
  BackupView,
  CreatedToken,
  DeployEvent,
  HostUpdatePlanView,
  HostUpdateRequestBody,
  HostUpdateView,
  HostView,
  ImageSourceRequest,
  ImageView,
  JoinAnswer,
  LogChunkView,
  PushEvent,
  RolloutPlanView,
  RolloutRequestBody,
  RolloutView,
  SessionView,
  TokenView,
  UserView,
  WindowRulesView,
} from "./views.js";

export interface JsonRoutes {
  "GET /healthz": { response: { ok: boolean; version: string } };
  /** Enrollment (the join token is the credential; an admin token is not needed). */
  "GET /v1/enroll/ca": { response: { caPem: string } };
  "POST /v1/enroll": {
    body: { token: string; name: string; labels?: Record<string, string> };
    response: JoinAnswer;
  };
  /** The dashboard's session: a user's token traded for an HttpOnly cookie (see SessionView). */
  "POST /v1/session": { body: { token: string }; response: SessionView };
  "GET /v1/session": { response: SessionView };
  "DELETE /v1/session": { response: { signedOut: boolean } };
  "GET /v1/hosts": { response: { hosts: HostView[] } };
  "GET /v1/hosts/:name": { params: { name: string }; response: HostView };
  "DELETE /v1/hosts/:name": { params: { name: string }; response: { removed: string; id: string } };
  /** Maintenance windows: `target` is a host name or a label selector `key=value`. */
  "GET /v1/maintenance-windows": { response: WindowRulesView };
  "PUT /v1/maintenance-windows/:target": {
    params: { target: string };
    body: { spec: string };
    response: { target: string; spec: string };
  };
  "DELETE /v1/maintenance-windows/:target": { params: { target: string }; response: { removed: string } };
  "POST /v1/tokens": { body: { ttl?: string }; response: CreatedToken };
  "POST /v1/backups": { response: BackupView };
  "GET /v1/tokens": { response: { tokens: TokenView[] } };
  "DELETE /v1/tokens/:id": { params: { id: string }; response: { removed: string } };
  "GET /v1/users": { response: { users: UserView[] } };
  "POST /v1/users": {
    body: { name: string; role: UserView["role"]; expires?: string };
    response: { user: UserView; token: string };
  };
  "POST /v1/users/:name/token": {
    params: { name: string };
    body: { expires?: string };
    response: { user: UserView; token: string };
  };
  "DELETE /v1/users/:name": { params: { name: string }; response: { removed: string } };
  "GET /v1/images": {
    query: { line?: string; hosts?: "1"; kind?: LineKind };
    response: { images: ImageView[] };
  };
  "DELETE /v1/images/:line/:version": {
    params: { line: string; version: string };
    response: { removed: string };
  };
  "POST /v1/images/:line/:version/evict": {
    params: { line: string; version: string };
    body: { hosts: string[] };
    response: { hosts: Array<{ host: string; state: string; error?: SerializedError }> };
  };
  "GET /v1/apps": { response: { apps: AppView[] } };
  "GET /v1/apps/:name": { params: { name: string }; response: AppView };
  "POST /v1/apps": { body: unknown; response: AppView };
  "DELETE /v1/apps/:name": {
    params: { name: string };
    query: { purgeData?: "1" };
    response: { removed: string; hosts: Array<{ host: string; state: string; error?: SerializedError }> };
  };
  "GET /v1/apps/:name/logs": {
    params: { name: string };
    query: { host: string; generation?: string; offset?: string; maxBytes?: string };
    response: LogChunkView;
  };
  "GET /v1/audit": {
    query: { limit?: string; since?: string };
    response: { entries: AuditEntry[]; refusedSinceStart: number };
  };
  "GET /v1/rollouts": { query: { limit?: string }; response: { rollouts: RolloutView[] } };
  "POST /v1/rollouts": { body: RolloutRequestBody; response: RolloutView };
  "POST /v1/rollouts/plan": { body: RolloutRequestBody; response: RolloutPlanView };
  "GET /v1/rollouts/:id": {
    params: { id: string };
    response: RolloutView & { events: RolloutEvent[] };
  };
  "POST /v1/rollouts/:id/:verb": {
    params: { id: string; verb: RolloutVerb };
    body: { maxParallel?: number };
    response: RolloutView;
  };
  "GET /v1/host-updates": { query: { limit?: string }; response: { hostUpdates: HostUpdateView[] } };
  "POST /v1/host-updates": { body: HostUpdateRequestBody; response: HostUpdateView };
  "POST /v1/host-updates/plan": { body: HostUpdateRequestBody; response: HostUpdatePlanView };
  "GET /v1/host-updates/:id": {
    params: { id: string };
    response: HostUpdateView & { events: HostUpdateEvent[] };
  };
  "POST /v1/host-updates/:id/:verb": {
    params: { id: string; verb: HostUpdateVerb };
    response: HostUpdateView;
  };
}

export interface StreamRoutes {
  "POST /v1/images": {
    body: { line: string; source: ImageSourceRequest; kind?: LineKind };
    event: { type: "output"; line: string };
    result: ImageView;
  };
  "POST /v1/images/:line/update": {
    params: { line: string };
    body: { command: string[]; env?: Record<string, string>; from?: number };
    event: { type: "output"; line: string };
    result: ImageView;
  };
  "POST /v1/images/:line/:version/push": {
    params: { line: string; version: string };
    body: { hosts?: string[]; all?: boolean };
    event: { type: "host" } & PushEvent;
    result: { hosts: PushEvent[] };
  };
  "POST /v1/apps/:name/deploy": {
    params: { name: string };
    body: { image?: string; code?: string; version?: number; hosts?: string[] };
    event: { type: "host" } & DeployEvent;
    result: { hosts: DeployEvent[] };
  };
  "POST /v1/apps/:name/hosts": {
    params: { name: string };
    body: { add?: string[]; remove?: string[]; purgeData?: boolean };
    event: { type: "host" } & DeployEvent;
    result: { app: AppView; hosts: DeployEvent[] };
  };
  "POST /v1/apps/:name/rollback": {
    params: { name: string };
    body: { hosts?: string[] };
    event: { type: "host" } & DeployEvent;
    result: { hosts: DeployEvent[] };
  };
}

/** The answer of a long route: its events, then its result. */
export type RouteStream<R extends keyof StreamRoutes> = AsyncGenerator<
  StreamRoutes[R]["event"],
  StreamRoutes[R]["result"]
>;

/** What a call of a route takes besides its name: its path parameters, query and body, as it has them. */
export type CallOptions<R> = (R extends { params: infer P } ? { params: P } : { params?: undefined }) &
  (R extends { query: infer Q } ? { query?: Q } : { query?: undefined }) &
  (R extends { body: infer B } ? { body: B } : { body?: undefined });

/** The method and the path of a route with its parameters filled in (each URI-encoded). */
export function routePath(
  route: string,
  options: { params?: object; query?: object },
): { method: string; path: string } {
  const space = route.indexOf(" ");
  const method = route.slice(0, space);
  const params = (options.params ?? {}) as Record<string, string | number>;
  const path = route.slice(space + 1).replace(/:([a-zA-Z]+)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${route}: no value for :${name}`);
    return encodeURIComponent(String(value));
  });
  const query = Object.entries((options.query ?? {}) as Record<string, string | undefined>).filter(
    (e): e is [string, string] => e[1] !== undefined,
  );
  return { method, path: query.length > 0 ? `${path}?${new URLSearchParams(query).toString()}` : path };
}
