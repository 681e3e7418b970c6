import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openControllerRequest, requestJson, type TlsTrust } from "@gild/agent/client";
import { GildError, gildErrorFrom, type SerializedError } from "@gild/core";
import type { CliEnv } from "./cli-env.js";

/** Where the controller is and how to talk to it. */
export interface ControllerTarget {
  url: string;
  token: string;
  caPem: string | null;
  actor: string;
}

export interface TargetFlags {
  controller?: string;
  ca?: string;
}

interface CliConfigFile {
  url: string;
  tokenFile: string;
  caFile: string | null;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GildError("GILD_UNAVAILABLE", `cannot read ${what} ${path} (${code})`, {
      hint: code === "EACCES" ? "run gild as root on the controller, or set GILD_TOKEN" : undefined,
    });
  }
}

/**
 * The controller to talk to: flags and environment first (--controller, GILD_CONTROLLER, GILD_TOKEN,
 * --ca/GILD_CA), then what the controller wrote for local use in <GILD_CONTROLLER_DIR>/cli.json.
 */
export function resolveTarget(env: CliEnv, flags: TargetFlags): ControllerTarget {
  let local: CliConfigFile | undefined;
  const localPath = join(env.controllerDir, "cli.json");
  const loadLocal = (): CliConfigFile => {
    if (!local) {
      try {
        local = JSON.parse(readFileSync(localPath, "utf8")) as CliConfigFile;
      } catch (err) {
        throw new GildError(
          "GILD_UNAVAILABLE",
          `no controller to talk to (cannot read ${localPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
          {
            hint: "run gild as root on the controller machine, or pass --controller URL with GILD_TOKEN and --ca (or GILD_CONTROLLER_DIR)",
          },
        );
      }
    }
    return local;
  };
  const url = (flags.controller ?? env.controller ?? loadLocal().url).replace(/\/+$/, "");
  const token = env.token ?? readText(loadLocal().tokenFile, "the admin token").trim();
  let caPem: string | null = null;
  if (url.startsWith("https://")) {
    const caFile = flags.ca ?? env.caFile ?? loadLocal().caFile;
    if (!caFile)
      throw new GildError("GILD_BAD_REQUEST", "an https controller needs its CA", {
        hint: "pass --ca FILE or set GILD_CA",
      });
    caPem = readText(caFile, "the controller CA");
  }
  return { url, token, caPem, actor: env.actor };
}

/** The typed face of the controller's /v1 API for CLI commands. */
export class ControllerClient {
  private readonly trust: TlsTrust;

  constructor(private readonly target: ControllerTarget) {
    this.trust = { caPem: target.caPem };
  }

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.target.token}`, "x-gild-actor": this.target.actor };
  }

  get<T>(path: string): Promise<T> {
    return requestJson<T>("GET", `${this.target.url}${path}`, undefined, this.trust, this.headers());
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return requestJson<T>("POST", `${this.target.url}${path}`, body, this.trust, this.headers());
  }

  delete<T>(path: string): Promise<T> {
    return requestJson<T>("DELETE", `${this.target.url}${path}`, undefined, this.trust, this.headers());
  }

  /**
   * A long operation answered as NDJSON: yields each progress line; returns the final result, or
   * throws the coded error of its last line.
   */
  async *ndjson<T>(method: string, path: string, body: unknown): AsyncGenerator<Record<string, unknown>, T> {
    const res = await openControllerRequest(
      method,
      `${this.target.url}${path}`,
      body,
      this.trust,
      this.headers(),
      30_000,
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
        const message = JSON.parse(line) as { type: string; result?: T; error?: SerializedError };
        // Transport lines: the answer started, the server is alive.
        if (message.type === "started" || message.type === "keepalive") continue;
        if (message.type === "result") return message.result as T;
        if (message.type === "error") throw gildErrorFrom(message.error as SerializedError);
        yield message as Record<string, unknown>;
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
      0,
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
}
