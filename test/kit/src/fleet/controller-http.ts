import { existsSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";

/** An API answer: its status and body text. */
export interface Answer {
  status: number;
  body: string;
}

/** Request a controller URL, trusting its CA (caFile) and sending the admin token when given. */
function send(
  url: URL,
  options: { caFile: string; token?: string; method?: string; body?: unknown },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === "https:";
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: options.method ?? "GET",
        timeout: 2_000,
        ...(secure ? { ca: readFileSync(options.caFile) } : {}),
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(payload === undefined ? {} : { "content-type": "application/json" }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.once("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.once("error", reject);
      },
    );
    req.once("timeout", () => req.destroy(new Error(`${url.href} did not answer within 2 s`)));
    req.once("error", reject);
    req.end(payload);
  });
}

const get = (url: URL, options: { caFile: string; token?: string }) => send(url, options);

/**
 * Whether GET <url>/healthz answers 200. Rejects on connection errors (waitFor keeps the last one for
 * its timeout message).
 */
export async function healthz(url: string, dataDir: string): Promise<boolean> {
  const caFile = join(dataDir, "tls", "ca.pem");
  const target = new URL("/healthz", url);
  // The controller makes its CA at first start, before it listens.
  if (target.protocol === "https:" && !existsSync(caFile)) return false;
  return (await get(target, { caFile })).status === 200;
}

/** How the CLI reaches the controller in this data dir (cli.json), with its admin token. */
function cliAccess(dataDir: string): { url: string; token: string; caFile: string } {
  const cli = JSON.parse(readFileSync(join(dataDir, "cli.json"), "utf8")) as {
    url: string;
    tokenFile: string;
    caFile: string | null;
  };
  return { url: cli.url, token: readFileSync(cli.tokenFile, "utf8").trim(), caFile: cli.caFile ?? "" };
}

/** One API request with the admin token (as the CLI makes it); the answer whatever its status. */
export function apiRequest(dataDir: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const access = cliAccess(dataDir);
  return send(new URL(path, access.url), { ...access, method, body });
}

/**
 * GET /v1/hosts straight from the API with the admin token, as cli.json in the data dir describes it:
 * a cheap poll (a CLI run costs a Node.js start); the harness confirms with `gild hosts --json`.
 */
export async function apiHosts<T>(dataDir: string): Promise<T[]> {
  const answer = await apiRequest(dataDir, "GET", "/v1/hosts");
  if (answer.status !== 200) throw new Error(`GET /v1/hosts answered ${answer.status}: ${answer.body}`);
  return (JSON.parse(answer.body) as { hosts: T[] }).hosts;
}
