import { Agent, request } from "node:https";

/** A coded error answer of the controller's API. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The controller's HTTP API over keep-alive TLS connections (trusting its CA), with the admin token.
 * Long operations answer newline-delimited JSON; `ndjson` returns their final result line.
 */
export class ControllerApi {
  private readonly agent: Agent;

  constructor(
    readonly url: string,
    caPem: string,
    private readonly adminToken: string,
    maxSockets = 64,
  ) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets,
      ca: caPem,
      // The server certificate names the listen address; the CA pin is what is checked here.
      checkServerIdentity: () => undefined,
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private raw(
    method: string,
    path: string,
    body: unknown,
    auth: boolean,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(
        new URL(path, this.url),
        {
          method,
          agent: this.agent,
          timeout: timeoutMs,
          headers: {
            ...(auth ? { authorization: `Bearer ${this.adminToken}`, "x-gild-actor": "bench" } : {}),
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.once("end", () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
          );
          res.once("error", reject);
        },
      );
      req.once("timeout", () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)),
      );
      req.once("error", reject);
      req.end(payload);
    });
  }

  /** One JSON request; a status >= 400 rejects with the controller's code and message. */
  async json<T>(
    method: string,
    path: string,
    body?: unknown,
    options: { auth?: boolean; timeoutMs?: number } = {},
  ): Promise<T> {
    const answer = await this.raw(method, path, body, options.auth ?? true, options.timeoutMs ?? 600_000);
    if (answer.status >= 400) {
      let code = "HTTP";
      let message = answer.text.slice(0, 500);
      try {
        const parsed = JSON.parse(answer.text) as { error?: { code?: string; message?: string } };
        code = parsed.error?.code ?? code;
        message = parsed.error?.message ?? message;
      } catch {
        // Not JSON: the text itself is the message.
      }
      throw new ApiError(
        answer.status,
        code,
        `${method} ${path} answered ${answer.status} ${code}: ${message}`,
      );
    }
    return JSON.parse(answer.text) as T;
  }

  /** A long operation answered as NDJSON: resolves with its `result` line, rejects with its `error` line. */
  async ndjson<T>(method: string, path: string, body: unknown): Promise<T> {
    const answer = await this.raw(method, path, body, true, 600_000);
    if (answer.status >= 400)
      throw new ApiError(answer.status, "HTTP", `${method} ${path}: ${answer.text.slice(0, 500)}`);
    const lines = answer.text.trim().split("\n");
    const last = JSON.parse(lines.at(-1) ?? "{}") as {
      type?: string;
      result?: T;
      error?: { code: string; message: string };
    };
    if (last.type === "result") return last.result as T;
    throw new ApiError(
      200,
      last.error?.code ?? "HTTP",
      `${method} ${path} failed: ${last.error?.message ?? answer.text.slice(0, 500)}`,
    );
  }
}
