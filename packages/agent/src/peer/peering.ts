import { type Logger, toGildError } from "@gild/core";
import type { AgentConfig } from "../config.js";
import type { AgentSecrets } from "../state.js";
import { ensureHostCertificate } from "./host-certificate.js";
import { PeerHoldings } from "./peer-holdings.js";
import { PeerServer, type PeerTls } from "./peer-server.js";

/** Host facts the controller reads to plan peer sources (its peer-sourcing.ts has the same names). */
const PEER_ADDRESS_FACT = "peer_address";
const PEER_FETCH_FACT = "peer_fetch";
/** How often the certificate is looked at (and renewed when near its end). */
const RENEW_CHECK_MS = 12 * 3_600_000;

/** The agent's side of peer fan-out, as the pull and the Hello use it. */
export interface Peering {
  /** What this host holds for others (a pull registers its spool and keeps its file here). */
  holdings: PeerHoldings;
  /** This host's certificate for fetching from peers; null: fetch from the controller only. */
  tls(): PeerTls | null;
  hostId: string;
  /** Hello facts: peer_fetch=1 with a certificate, peer_address while the server listens. */
  facts(): Record<string, string>;
  close(): Promise<void>;
}

/**
 * Get this host's peer certificate (renewed while running) and, with --peer-listen, start the peer
 * server. A controller that cannot issue a certificate (an older one) leaves the host fetching from the
 * controller only, as before: a warning, not a failure.
 */
export async function startPeering(
  config: AgentConfig,
  secrets: AgentSecrets,
  cacheDir: string,
  log: Logger,
): Promise<Peering> {
  const plog = log.child({ component: "peering" });
  const holdings = new PeerHoldings({ cacheDir, log });
  await holdings.open();
  let tls: PeerTls | null = null;
  let server: PeerServer | undefined;
  let address = "";
  const obtain = async (): Promise<void> => {
    try {
      tls = await ensureHostCertificate({
        stateDir: config.stateDir,
        controllerUrl: secrets.identity.controllerUrl,
        credential: secrets.credential,
        caPem: secrets.caPem,
        log: plog,
      });
      server?.setCertificate(tls);
    } catch (err) {
      const e = toGildError(err);
      plog.warn(
        { code: e.code },
        `no peer certificate, image chunks come from the controller only: ${e.message}`,
      );
    }
  };
  await obtain();
  const renew = setInterval(() => void obtain(), RENEW_CHECK_MS);
  renew.unref();
  const listen = config.peerListen;
  if (listen && tls) {
    server = new PeerServer({
      hostId: secrets.identity.hostId,
      tls,
      holdings,
      signingPublicKeyPem: secrets.signingPublicKeyPem,
      uploadRate: config.peerUploadRate,
      log,
    });
    const bound = await server.listen(listen.host, listen.port);
    holdings.serving = true;
    address = listen.host.includes(":") ? `[${listen.host}]:${bound.port}` : `${listen.host}:${bound.port}`;
    plog.info({ address, uploadRate: config.peerUploadRate }, "peer server listening");
  } else if (listen) {
    plog.warn("--peer-listen is set but there is no peer certificate: the peer server does not start");
  }
  return {
    holdings,
    tls: () => tls,
    hostId: secrets.identity.hostId,
    facts: () => ({
      ...(tls ? { [PEER_FETCH_FACT]: "1" } : {}),
      ...(address ? { [PEER_ADDRESS_FACT]: address } : {}),
    }),
    async close() {
      clearInterval(renew);
      holdings.close();
      await server?.close();
    },
  };
}
