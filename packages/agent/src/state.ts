import { createPublicKey, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { GildError, parseCredential } from "@gild/core";
import { readIfExists, writeFileAtomic } from "./write-atomic.js";

/** Who this agent is, after `gild agent join`: kept in its state dir (0700). */
export interface AgentIdentity {
  hostId: string;
  name: string;
  labels: Record<string, string>;
  controllerUrl: string;
  joinedAt: number;
}

/** The identity plus the secrets the agent needs to connect and to verify what it receives. */
export interface AgentSecrets {
  identity: AgentIdentity;
  /** `<host id>.<secret>`, file mode 0600. */
  credential: string;
  /** The controller's CA (null in insecure dev mode). */
  caPem: string | null;
  /** ed25519 public key that signs artifact manifests. */
  signingPublicKeyPem: string;
}

const FILES = {
  identity: "identity.json",
  credential: "credential",
  ca: "controller-ca.pem",
  signing: "controller-signing.pub",
};

export async function saveSecrets(stateDir: string, secrets: AgentSecrets): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await chmod(stateDir, 0o700);
  await writeFileAtomic(join(stateDir, FILES.credential), `${secrets.credential}\n`, 0o600);
  if (secrets.caPem) await writeFileAtomic(join(stateDir, FILES.ca), secrets.caPem, 0o644);
  await writeFileAtomic(join(stateDir, FILES.signing), secrets.signingPublicKeyPem, 0o644);
  // The identity goes last: its presence is what says "joined".
  await writeFileAtomic(
    join(stateDir, FILES.identity),
    `${JSON.stringify(secrets.identity, null, 2)}\n`,
    0o600,
  );
}

/** A damaged state file: the agent cannot guess what it held. */
function damaged(path: string, what: string, cause?: unknown): GildError {
  return new GildError("GILD_STATE_CORRUPT", `${path} is damaged: ${what}`, {
    hint: "restore the agent's state dir from a backup, or remove the host (gild host rm) and join it again with a new token",
    cause,
  });
}

async function readState(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw damaged(path, "it is missing", err);
    throw err;
  }
}

function parseIdentity(path: string, text: string): AgentIdentity {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw damaged(path, `not JSON (${(err as Error).message})`, err);
  }
  const v = value as Partial<AgentIdentity> | null;
  const labelsOk =
    typeof v?.labels === "object" &&
    v.labels !== null &&
    Object.values(v.labels).every((x) => typeof x === "string");
  if (
    typeof v?.hostId !== "string" ||
    v.hostId === "" ||
    typeof v.name !== "string" ||
    typeof v.controllerUrl !== "string" ||
    !/^https?:\/\//.test(v.controllerUrl) ||
    typeof v.joinedAt !== "number" ||
    !labelsOk
  ) {
    throw damaged(path, "it lacks hostId, name, controllerUrl, labels or joinedAt");
  }
  return v as AgentIdentity;
}

function checkPem(path: string, text: string, parse: (pem: string) => unknown): string {
  try {
    parse(text);
  } catch (err) {
    throw damaged(path, `not a valid PEM (${(err as Error).message})`, err);
  }
  return text;
}

/**
 * The agent's identity and secrets from its state dir, each checked: GILD_NOT_JOINED when there is no
 * identity at all, GILD_STATE_CORRUPT (naming the file) when one is damaged or missing. Both mean a
 * restart cannot help: the agent exits with EXIT_REFUSED.
 */
export async function loadSecrets(stateDir: string): Promise<AgentSecrets> {
  const identityPath = join(stateDir, FILES.identity);
  let identityText: string;
  try {
    identityText = await readFile(identityPath, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new GildError("GILD_NOT_JOINED", `this agent has not joined a controller (no ${identityPath})`, {
        hint: "run: gild agent join <controller-url> <token> --name <host-name>",
      });
    }
    throw err;
  }
  const identity = parseIdentity(identityPath, identityText);
  const credentialPath = join(stateDir, FILES.credential);
  const credential = (await readState(credentialPath)).trim();
  const parsed = parseCredential(credential);
  if (!parsed || parsed.hostId !== identity.hostId)
    throw damaged(credentialPath, "it does not hold this host's credential (<host id>.<secret>)");
  const caPath = join(stateDir, FILES.ca);
  const caPem = identity.controllerUrl.startsWith("http://")
    ? await readIfExists(caPath)
    : await readState(caPath);
  if (caPem !== null) checkPem(caPath, caPem, (pem) => new X509Certificate(pem));
  const signingPath = join(stateDir, FILES.signing);
  const signingPublicKeyPem = checkPem(signingPath, await readState(signingPath), (pem) =>
    createPublicKey(pem),
  );
  return { identity, credential, caPem, signingPublicKeyPem };
}
