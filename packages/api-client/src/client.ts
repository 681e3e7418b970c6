import type http from "node:http";
import https from "node:https";
import { GildError, gildErrorFrom, type SerializedError } from "@gild/core";
import {
  type CallOptions,
  type JsonRoutes,
  type RouteStream,
  routePath,
  type StreamRoutes,
} from "./routes.js";
import { openControllerRequest, readBody, requestJson, type TlsTrust, tlsOptions } from "./transport.js";

/** The result of a long route, its events left unread. */
export async function streamResult<E, R>(stream: AsyncGenerator<E, R>): Promise<R> {
  for (;;) {
    const next = await stream.next();
    if (next.done) return next.value;
  }
}

/** Where the controller is and how to talk to it. */
export interface ControllerTarget {
  url: string;
  /** A user's token, or the bootstrap admin token: the audit records whose it is. */
  token: string;
  /** The controller's CA (https), or null for an http controller. */
  caPem: string | null;
}

/** A raw answer: status and body text, whatever the status. */
export interface RawAnswer {
  status: number;
  text: string;
}

/**
 * The controller's admin API, typed by route (routes.ts): `call` for JSON answers, `stream` for the
 * long operations that answer NDJSON, `events` for the rollout live view. With `keepAlive`, requests
 * share a pool of that many kept-alive connections (the kit and the benchmarks); without, each request
 * opens its own (the CLI, which makes a few and exits).
 */
export class ControllerClient {
  private readonly trust: TlsTrust;
  private readonly agent: http.Agent | undefined;

  constructor(
    readonly target: ControllerTarget,
    options: { keepAlive?: number } = {},
  ) {
    this.trust = { caPem: target.caPem };
    this.agent =
      options.keepAlive !== undefined && target.url.startsWith("https:")
        ? new https.Agent({
            keepAlive: true,
            maxSockets: options.keepAlive,
            ...(tlsOptions(this.trust) as https.AgentOptions),
          })
        : undefined;
  }

  /** Close the kept-alive connections. */
  close(): void {
    this.agent?.destroy();
  }

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.target.token}` };
  }

  /** One JSON route; a refusal throws the controller's coded error. */
  call<R extends keyof JsonRoutes>(
    route: R,
    ...options: object extends CallOptions<JsonRoutes[R]>
      ? [CallOptions<JsonRoutes[R]>?]
      : [CallOptions<JsonRoutes[R]>]
  ): Promise<JsonRoutes[R]["response"]> {
    // Through unknown: the union of every route's options is too large for the compiler to build.
    const given = ((options as unknown[])[0] ?? {}) as { params?: object; query?: object; body?: unknown };
    const { method, path } = routePath(route, given);
    return requestJson(
      method,
      `${this.target.url}${path}`,
      method === "GET" || method === "DELETE" ? undefined : (given.body ?? {}),
      this.trust,
      this.headers(),
      this.agent ? { agent: this.agent } : {},
    );
  }

  /**
   * A long route answered as NDJSON: yields each event; returns the final result, or throws the coded
   * error of its last line.
   */
  async *stream<R extends keyof StreamRoutes>(
    route: R,
    options: CallOptions<StreamRoutes[R]>,
  ): RouteStream<R> {
    const given = options as { params?: object; body?: unknown };
    const { method, path } = routePath(route, given);
    const res = await openControllerRequest(
      method,
      `${this.target.url}${path}`,
      given.body ?? {},
      this.trust,
      this.headers(),
      this.agent ? { agent: this.agent } : {},
    );
    let buffer = "";
    for await (const chunk of res) {
      buffer += (chunk as Buffer).toString("utf8");
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf("\n");
        if (line.length === 0) continue;
        const message = JSON.parse(line) as { type: string; result?: unknown; error?: SerializedError };
        // Transport lines: the answer started, the server is alive.
        if (message.type === "started" || message.type === "keepalive") continue;
        if (message.type === "result") return message.result as StreamRoutes[R]["result"];
        if (message.type === "error") throw gildErrorFrom(message.error as SerializedError);
        yield message as StreamRoutes[R]["event"];
      }
    }
    throw new GildError("GILD_UNAVAILABLE", "the controller ended the answer without a result");
  }

  /** Server-sent events (the rollout live view): yields each event's JSON data until the stream ends. */
  async *events(path: string, signal?: AbortSignal): AsyncGenerator<Record<string, unknown>> {
    const res = await openControllerRequest(
      "GET",
      `${this.target.url}${path}`,
      undefined,
      this.trust,
      { ...this.headers(), accept: "text/event-stream" },
      { timeoutMs: 0 },
    );
    signal?.addEventListener("abort", () => res.destroy(), { once: true });
    let buffer = "";
    try {
      for await (const chunk of res) {
        buffer += (chunk as Buffer).toString("utf8");
        let sep = buffer.indexOf("\n\n");
        while (sep >= 0) {
          const block = buffer.slice(0, sep);
          buffer = buffer.slice(sep + 2);
          sep = buffer.indexOf("\n\n");
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n");
          if (data.length > 0) yield JSON.parse(data) as Record<string, unknown>;
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
  }

  /**
   * Any request, answered whatever its status (tests that check a refusal's status, or send what the
   * routes do not type). `auth: false` sends no token.
   */
  async raw(
    method: string,
    path: string,
    body?: unknown,
    options: { auth?: boolean; timeoutMs?: number } = {},
  ): Promise<RawAnswer> {
    const res = await openControllerRequest(
      method,
      `${this.target.url}${path}`,
      body,
      this.trust,
      options.auth === false ? {} : this.headers(),
      {
        anyStatus: true,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        ...(this.agent ? { agent: this.agent } : {}),
      },
    );
    return { status: res.statusCode ?? 0, text: await readBody(res) };
  }
}
