// The transport of the controller's API: one request, TLS pinned to the controller's CA, refusals and
// connection failures as coded errors. The agent uses it for enrollment and artifacts; ControllerClient
// (client.ts) builds the admin API on it.
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { GildError, gildErrorFrom, type SerializedError } from "@gild/core";

export interface TlsTrust {
  /** CA to verify the controller with; "insecure-fetch-ca" only for fetching the CA to pin-check it. */
  caPem: string | "insecure-fetch-ca" | null;
}

/**
 * OpenSSL's verification failures as Node reports them (err.code): a controller whose certificate
 * does not lead to the trusted CA, or is not valid now. Anything else is a connection problem.
 */
const TLS_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Whether a request failed because the controller's certificate is not trusted. */
export function isTlsVerifyError(err: NodeJS.ErrnoException): boolean {
  return err.code !== undefined && TLS_VERIFY_CODES.has(err.code);
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

export async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The controller's coded error from a refused answer's body ({error}), or `fallback` when the body
 * carries none (not JSON, or a proxy's page).
 */
export async function errorFromResponse(res: IncomingMessage, fallback: GildError): Promise<GildError> {
  return errorFromBody(await readBody(res).catch(() => ""), fallback);
}

/** The coded error a refused answer's body text carries ({error}), or `fallback`. */
export function errorFromBody(text: string, fallback: GildError): GildError {
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
/** How one request is made. */
export interface RequestOptions {
  /** No answer within this long is GILD_TIMEOUT; 0 for none (a live view). Default 30 s. */
  timeoutMs?: number;
  /** Kept-alive connections to use. */
  agent?: http.Agent;
  /** Resolve with the answer whatever its status, instead of rejecting with the coded error. */
  anyStatus?: boolean;
}

export function openControllerRequest(
  method: string,
  url: string,
  body: unknown,
  trust: TlsTrust,
  headers: Record<string, string> = {},
  options: RequestOptions = {},
): Promise<IncomingMessage> {
  const { timeoutMs = 30_000, agent } = options;
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
        ...(agent ? { agent } : {}),
      },
      (res) => {
        req.setTimeout(0);
        if ((res.statusCode ?? 500) < 400 || options.anyStatus) {
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
      const tlsProblem = isTlsVerifyError(err);
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
  options: RequestOptions = {},
): Promise<T> {
  const res = await openControllerRequest(method, url, body, trust, headers, options);
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
