import { type JoinAnswer, requestJson } from "@gild/api-client";
import {
  caPinOf,
  GildError,
  type Logger,
  parseJoinToken,
  silentLogger,
  validateHostIdentity,
} from "@gild/core";
import { type AgentIdentity, saveSecrets } from "./state.js";

export interface JoinOptions {
  controllerUrl: string;
  token: string;
  name: string;
  labels: Record<string, string>;
  stateDir: string;
  log?: Logger;
}

/**
 * `gild agent join`: check the controller's CA against the fingerprint in the token before the
 * token's secret is sent anywhere, then trade the token for this host's credential and keep it.
 */
export async function joinController(options: JoinOptions): Promise<AgentIdentity> {
  const log = options.log ?? silentLogger;
  const token = parseJoinToken(options.token);
  validateHostIdentity(options.name, options.labels);
  const url = options.controllerUrl.replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+$/.test(url)) {
    throw new GildError("GILD_BAD_REQUEST", `"${options.controllerUrl}" is not a controller URL`, {
      hint: "use https://host:port",
    });
  }
  let caPem: string | null = null;
  if (url.startsWith("https://")) {
    // Fetched without verification on purpose: it is verified right here, against the pin, before use.
    const fetched = await requestJson<{ caPem: string }>("GET", `${url}/v1/enroll/ca`, undefined, {
      caPem: "insecure-fetch-ca",
    });
    if (caPinOf(fetched.caPem) !== token.caPin) {
      throw new GildError(
        "GILD_CA_MISMATCH",
        `the controller at ${url} does not have the CA this token was made for`,
        {
          hint: "check the URL; a mismatch can also mean someone is intercepting the connection",
        },
      );
    }
    caPem = fetched.caPem;
  } else {
    log.warn("joining over plain http (controller in insecure dev mode): the CA pin is not checked");
  }
  const answer = await requestJson<JoinAnswer>(
    "POST",
    `${url}/v1/enroll`,
    { token: options.token.trim(), name: options.name, labels: options.labels },
    { caPem },
  );
  const identity: AgentIdentity = {
    hostId: answer.hostId,
    name: answer.name,
    labels: options.labels,
    controllerUrl: url,
    joinedAt: Date.now(),
  };
  await saveSecrets(options.stateDir, {
    identity,
    credential: answer.credential,
    caPem: caPem ?? null,
    signingPublicKeyPem: answer.signingPublicKeyPem,
  });
  return identity;
}
