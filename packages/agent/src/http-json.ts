import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { GildError, gildErrorFrom, type SerializedError } from "@gild/core";

export interface TlsTrust {
  /** CA to verify the controller with; "insecure-fetch-ca" only for fetching the CA to pin-check it. */
  caPem: string | "insecure-fetch-ca" | null;
}

/**
 * TLS options for talking to the controller: the chain must lead to the pinned controller CA. Host
 * names are not checked: the CA is private to one controller and pinned at join, so any certificate
 * it signed is that controller, whatever address it is reached by.
 */
export function tlsOptions(trust: TlsTrust): https.RequestOptions {
  if (trust.caPem === "insecure-fetch-ca") return { rejectUnauthorized: false };
  if (trust.caPem === null) return {};
  return { ca: trust.caPem, checkServerIdentity: () => undefined };
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The controller's coded error from a refused answer's body ({error}), or `fallback` when the body
 * carries none (not JSON, or a proxy's page).
 */
export async function errorFromResponse(res: IncomingMessage, fallback: GildError): Promise<GildError> {
  const text = await readBody(res).catch(() => "");
  try {
    const error = (JSON.parse(text) as { error?: SerializedError }).error;
    return error ? gildErrorFrom(error) : fallback;
  } catch {
    return fallback;
  }
}

/**
 * Send a request to the controller and resolve with the response once its status is known; answers
 * >= 400 become the controller's coded error. Connection and TLS failures are coded too.
 */
export function openControllerRequest(
  method: string,
  url: string,
  body: unknown,
  trust: TlsTrust,
  headers: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<IncomingMessage> {
  const target = new URL(url);
  const transport = target.protocol === "https:" ? https : http;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = transport.request(
      target,
      {
        method,
        headers: {
          accept: "application/json",
          ...(payload
            ? { "content-type": "application/json", "content-length": String(payload.length) }
            : {}),
          ...headers,
        },
        ...(target.protocol === "https:" ? tlsOptions(trust) : {}),
      },
      (res) => {
        req.setTimeout(0);
        if ((res.statusCode ?? 500) < 400) {
          resolve(res);
          return;
        }
        errorFromResponse(
          res,
          new GildError("GILD_UNAVAILABLE", `the controller answered HTTP ${res.statusCode}`),
        ).then(reject);
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(
        new GildError("GILD_TIMEOUT", `no answer from ${target.origin} within ${timeoutMs / 1000} s`),
      ),
    );
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err instanceof GildError) return reject(err);
      const tlsProblem = /certificate|self.signed|unable to verify|CERT_/i.test(`${err.code} ${err.message}`);
      reject(
        new GildError(
          tlsProblem ? "GILD_CA_MISMATCH" : "GILD_UNAVAILABLE",
          `cannot reach the controller at ${target.origin}: ${err.message}`,
          {
            hint: tlsProblem
              ? "the controller's certificate is not signed by the CA this client trusts"
              : "check the URL and that the controller runs",
            cause: err,
          },
        ),
      );
    });
    if (payload) req.write(payload);
    req.end();
  });
}

/** One JSON request to the controller. */
export async function requestJson<T>(
  method: string,
  url: string,
  body: unknown,
  trust: TlsTrust,
  headers: Record<string, string> = {},
): Promise<T> {
  const res = await openControllerRequest(method, url, body, trust, headers);
  const text = await readBody(res);
  try {
    return (text.length > 0 ? JSON.parse(text) : {}) as T;
  } catch {
    throw new GildError(
      "GILD_UNAVAILABLE",
      `the controller answered ${res.statusCode} with something that is not JSON`,
    );
  }
}
