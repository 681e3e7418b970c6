import { chmod, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { GildError } from "@gild/core";
import { writeFileAtomic } from "./write-atomic.js";

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

export async function loadSecrets(stateDir: string): Promise<AgentSecrets> {
  let identityText: string;
  try {
    identityText = await readFile(join(stateDir, FILES.identity), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new GildError(
        "GILD_NOT_JOINED",
        `this agent has not joined a controller (no ${join(stateDir, FILES.identity)})`,
        {
          hint: "run: gild agent join <controller-url> <token> --name <host-name>",
        },
      );
    }
    throw err;
  }
  const identity = JSON.parse(identityText) as AgentIdentity;
  const credential = (await readFile(join(stateDir, FILES.credential), "utf8")).trim();
  const caPem = await readFile(join(stateDir, FILES.ca), "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" && identity.controllerUrl.startsWith("http://")) return null;
    throw err;
  });
  const signingPublicKeyPem = await readFile(join(stateDir, FILES.signing), "utf8");
  return { identity, credential, caPem, signingPublicKeyPem };
}
