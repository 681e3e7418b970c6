import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ControllerClient, type HostView } from "@gild/api-client";

/** An API answer: its status and body text. */
export interface Answer {
  status: number;
  body: string;
}

/** A client of the controller in this data dir, as the CLI reaches it (cli.json, the admin token). */
function cliClient(dataDir: string): ControllerClient {
  const cli = JSON.parse(readFileSync(join(dataDir, "cli.json"), "utf8")) as {
    url: string;
    tokenFile: string;
    caFile: string | null;
  };
  return new ControllerClient({
    url: cli.url,
    token: readFileSync(cli.tokenFile, "utf8").trim(),
    caPem: cli.caFile ? readFileSync(cli.caFile, "utf8") : null,
  });
}

/**
 * Whether GET <url>/healthz answers 200. Rejects on connection errors (waitFor keeps the last one for
 * its timeout message).
 */
export async function healthz(url: string, dataDir: string): Promise<boolean> {
  const caFile = join(dataDir, "tls", "ca.pem");
  // The controller makes its CA at first start, before it listens.
  if (url.startsWith("https:") && !existsSync(caFile)) return false;
  const client = new ControllerClient({
    url,
    token: "",
    caPem: url.startsWith("https:") ? readFileSync(caFile, "utf8") : null,
  });
  return (await client.raw("GET", "/healthz", undefined, { auth: false, timeoutMs: 2_000 })).status === 200;
}

/** One API request with the admin token (as the CLI makes it); the answer whatever its status. */
export async function apiRequest(
  dataDir: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer> {
  const answer = await cliClient(dataDir).raw(method, path, body, { timeoutMs: 2_000 });
  return { status: answer.status, body: answer.text };
}

/**
 * GET /v1/hosts straight from the API with the admin token, as cli.json in the data dir describes it:
 * a cheap poll (a CLI run costs a Node.js start); the harness confirms with `gild hosts --json`.
 */
export async function apiHosts(dataDir: string): Promise<HostView[]> {
  return (await cliClient(dataDir).call("GET /v1/hosts")).hosts;
}
