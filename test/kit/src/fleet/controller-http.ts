import { existsSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";

interface Answer {
  status: number;
  body: string;
}

/** GET a controller URL, trusting its CA (caFile) and sending the admin token when given. */
function get(url: URL, options: { caFile: string; token?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === "https:";
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        timeout: 2_000,
        ...(secure ? { ca: readFileSync(options.caFile) } : {}),
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
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
    req.end();
  });
}

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

/**
 * GET /v1/hosts straight from the API with the admin token, as cli.json in the data dir describes it:
 * a cheap poll (a CLI run costs a Node.js start); the harness confirms with `gild hosts --json`.
 */
export async function apiHosts<T>(dataDir: string): Promise<T[]> {
  const cli = JSON.parse(readFileSync(join(dataDir, "cli.json"), "utf8")) as {
    url: string;
    tokenFile: string;
    caFile: string | null;
  };
  const token = readFileSync(cli.tokenFile, "utf8").trim();
  const answer = await get(new URL("/v1/hosts", cli.url), { caFile: cli.caFile ?? "", token });
  if (answer.status !== 200) throw new Error(`GET /v1/hosts answered ${answer.status}: ${answer.body}`);
  return (JSON.parse(answer.body) as { hosts: T[] }).hosts;
}
