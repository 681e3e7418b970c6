import type { JsonRoutes, SessionView } from "@gild/api-client";

/** An answer of the controller that was not 2xx: its coded error, as the CLI would print it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string | undefined,
  ) {
    super(message);
  }
}

type Method = "GET" | "POST" | "PUT" | "DELETE";
type RouteOf<M extends Method> = Extract<keyof JsonRoutes, `${M} ${string}`>;
type ResponseOf<K extends keyof JsonRoutes> = JsonRoutes[K]["response"];

/**
 * The session's CSRF token: the controller refuses a mutation authenticated by the session cookie
 * unless it carries this in x-gild-csrf. Kept in memory only (never in storage); after a reload the
 * page asks GET /v1/session for it again.
 */
let csrfToken = "";

/** Remember the CSRF token of the session just signed in or found. */
export function rememberSession(session: SessionView | null): void {
  csrfToken = session?.csrfToken ?? "";
}

async function request<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["x-gild-csrf"] = csrfToken;
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const data: unknown = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const error = (data as { error?: { code?: string; message?: string; hint?: string } } | null)?.error;
    throw new ApiError(
      res.status,
      error?.code ?? `HTTP_${res.status}`,
      error?.message ?? res.statusText,
      error?.hint,
    );
  }
  return data as T;
}

/** GET a route: `route` names it (for its answer's type), `path` is the URL with its parameters filled in. */
export function get<K extends RouteOf<"GET">>(route: K, path: string): Promise<ResponseOf<K>> {
  void route;
  return request("GET", path);
}

/** POST (or DELETE) a route, with the session's CSRF token. */
export function mutate<K extends RouteOf<"POST"> | RouteOf<"DELETE">>(
  route: K,
  path: string,
  body?: unknown,
): Promise<ResponseOf<K>> {
  return request(route.startsWith("DELETE") ? "DELETE" : "POST", path, body);
}
