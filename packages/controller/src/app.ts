import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { StreamCapabilities } from "@gild/btrfs";
import { GILD_VERSION, GildError, toGildError } from "@gild/core";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Logger as PinoLogger } from "pino";
import { AgentHub } from "./agent-hub.js";
import { AppService } from "./app-service.js";
import { ArtifactService } from "./artifact-service.js";
import { installAuth } from "./auth.js";
import { CommandService } from "./command-service.js";
import type { ControllerConfig } from "./config.js";
import { ConnectionGate } from "./connection-gate.js";
import { DashboardSessions } from "./dashboard-sessions.js";
import { Enrollment } from "./enrollment.js";
import { authenticateHost } from "./host-auth.js";
import { HostUpdateExecutor } from "./host-update-executor.js";
import { HostUpdateOperations } from "./host-update-operations.js";
import { installErrorHandling } from "./http-errors.js";
import { ImageService } from "./image-service.js";
import { syncInventories } from "./inventory-sync.js";
import { ControllerMetrics } from "./metrics.js";
import { installOpenApi } from "./openapi.js";
import { PeerSourcing } from "./peer-sourcing.js";
import type { TlsMaterial } from "./pki.js";
import { RequestAudit } from "./request-audit.js";
import { RolloutExecutor } from "./rollout-executor.js";
import { RolloutOperations } from "./rollout-operations.js";
import { errorResponses, jsonResponses } from "./route-schemas.js";
import { appRoutes } from "./routes/apps.js";
import { auditRoutes } from "./routes/audit.js";
import { backupRoutes } from "./routes/backups.js";
import { dashboardRoutes, locateDashboard } from "./routes/dashboard.js";
import { enrollRoutes } from "./routes/enroll.js";
import { hostUpdateRoutes } from "./routes/host-updates.js";
import { hostRoutes } from "./routes/hosts.js";
import { imageRoutes } from "./routes/images.js";
import { windowRoutes } from "./routes/maintenance-windows.js";
import { peerRoutes } from "./routes/peer.js";
import { rolloutRoutes } from "./routes/rollouts.js";
import { sessionRoutes } from "./routes/session.js";
import { tokenRoutes } from "./routes/tokens.js";
import { userRoutes } from "./routes/users.js";
import { installSecurityHeaders } from "./security-headers.js";
import type { ControllerImageBuilder, ControllerImageStore, Services } from "./services.js";
import type { Store } from "./store/store.js";
import { storeFailure } from "./store/store-errors.js";
import { TransferServer } from "./transfer-server.js";

export interface ControllerDeps {
  config: ControllerConfig;
  log: PinoLogger;
  store: Store;
  /** The golden images (in production the btrfs ImageStore on the controller's pool). */
  imageStore: ControllerImageStore;
  /** How new versions are made (in production @gild/runtime's ImageBuilder on the same pool). */
  imageBuilder: ControllerImageBuilder;
  capabilities: StreamCapabilities;
  tls: TlsMaterial;
  adminToken: string;
  /** The token that may read GET /metrics and nothing else; without one only the admin token may. */
  metricsToken?: string;
  signing: { privatePem: string; publicPem: string };
  /** The clock (tests move it to expire tokens); Date.now by default. */
  now?: () => number;
  /** The dashboard's built files; by default the @gild/dashboard package's dist, null for none. */
  dashboardDir?: string | null;
}

export interface Controller {
  app: FastifyInstance;
  services: Services;
  /** Stop timers, close sockets and the HTTP server (not the store: main owns it). */
  close(): Promise<void>;
}

function refuseUpgrade(socket: Duplex, error: GildError): void {
  const body = JSON.stringify({ error: error.toJSON() });
  socket.end(
    `HTTP/1.1 ${error.status} ${error.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Build the controller app (not listening): fastify routes plus the agent and artifact WebSockets. */
export async function buildController(deps: ControllerDeps): Promise<Controller> {
  const { config, store } = deps;
  // Fastify types the instance by its logger: the routes take the base logger type, so give it that.
  const loggerInstance: FastifyBaseLogger = deps.log;
  const app = Fastify({
    loggerInstance,
    // Requests are not logged one by one; mutations go to the audit log, failures to the error log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // On shutdown, long answers (a push that streams progress) are cut instead of waited for.
    forceCloseConnections: true,
    // Strict bodies: unknown fields and wrong types are refused (listing every problem), never coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
    ...(config.insecureDev
      ? {}
      : {
          https: {
            key: deps.tls.keyPem,
            cert: deps.tls.certPem,
            handshakeTimeout: config.handshakeTimeoutMs,
          },
        }),
  });
  const log = deps.log;
  const connections = new ConnectionGate(app.server, {
    maxPending: config.maxPendingConnections,
    timeoutMs: config.handshakeTimeoutMs,
    log,
  });
  const hub = new AgentHub({
    store,
    log,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    controllerVersion: GILD_VERSION,
  });
  const commands = new CommandService({ store, hub, log });
  // Batched writes that could not be written wait and are tried again; what waits on them (a command's
  // send) waits too.
  store.onBatchFailure = (err, retryInMs) => {
    const unwritable = storeFailure(err);
    if (unwritable) log.warn({ code: unwritable.code, retryInMs }, "batched writes not stored; retrying");
    else log.error({ err, retryInMs }, "batched writes failed; retrying");
  };
  const metrics = new ControllerMetrics({ store, hub, commands, connections });
  const artifacts = new ArtifactService({
    store,
    images: deps.imageStore,
    dir: config.paths.artifacts,
    signingKeyPem: deps.signing.privatePem,
    log,
  });
  const transfers = new TransferServer({
    artifacts,
    log,
    rateLimitBytesPerSecond: config.transferRateLimit,
    onSent: (line, bytes) => metrics.artifactBytesSent(line, bytes),
  });
  const peers = new PeerSourcing({
    signingKeyPem: deps.signing.privatePem,
    host: (id) => store.hosts.byId(id),
    isOnline: (id) => hub.isOnline(id),
    log,
    ...(deps.now ? { now: deps.now } : {}),
  });
  commands.addListener({ onFinished: (record) => peers.onCommandFinished(record) });
  const images = new ImageService({
    store,
    images: deps.imageStore,
    builder: deps.imageBuilder,
    artifacts,
    commands,
    capabilities: deps.capabilities,
    compressedStreams: config.compressedStreams,
    peers,
    log,
  });
  const enrollment = new Enrollment({
    store,
    caPin: deps.tls.caPin,
    caPem: deps.tls.caPem,
    signingPublicKeyPem: deps.signing.publicPem,
    defaultTtlMs: config.tokenTtlMs,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const apps = new AppService({ store, hub, commands, images, log });
  const rolloutExecutor = new RolloutExecutor({
    store,
    metrics,
    hub,
    commands,
    images,
    apps,
    log,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const rollouts = new RolloutOperations({
    store,
    images,
    apps,
    executor: rolloutExecutor,
    log,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const clock = deps.now ? { now: deps.now } : {};
  const hostUpdateExecutor = new HostUpdateExecutor({ store, metrics, hub, commands, log, ...clock });
  const hostUpdates = new HostUpdateOperations({ store, executor: hostUpdateExecutor, log, ...clock });
  const audit = new RequestAudit({ repo: store.audit, log, retentionMs: config.auditRetentionMs });
  const services: Services = {
    config,
    log,
    store,
    imageStore: deps.imageStore,
    imageBuilder: deps.imageBuilder,
    capabilities: deps.capabilities,
    tls: deps.tls,
    hub,
    commands,
    artifacts,
    transfers,
    images,
    enrollment,
    apps,
    rollouts,
    rolloutExecutor,
    hostUpdates,
    hostUpdateExecutor,
    audit,
    metrics,
  };
  // A changed inventory (health, a new image, a generation) may move a rollout forward.
  // ... or a host update (a host back after its reboot, its apps healthy again).
  syncInventories(hub, store, (hostId) => {
    rolloutExecutor.pokeHost(hostId);
    hostUpdateExecutor.pokeHost(hostId);
  });

  const sessions = new DashboardSessions({
    repo: store.sessions,
    ttlMs: config.sessionTtlMs,
    secure: !config.insecureDev,
    now: deps.now ?? Date.now,
  });
  installErrorHandling(app);
  installSecurityHeaders(app);
  installAuth(app, {
    adminToken: deps.adminToken,
    ...(deps.metricsToken ? { metricsToken: deps.metricsToken } : {}),
    users: store.users,
    sessions,
    audit,
    connections,
    ...clock,
  });
  await installOpenApi(app);
  app.get(
    "/healthz",
    {
      schema: {
        summary: "Whether the controller answers, and its version",
        tags: ["meta"],
        response: jsonResponses("alive", {
          type: "object",
          required: ["ok", "version"],
          properties: { ok: { type: "boolean" }, version: { type: "string" } },
        }),
      },
    },
    async () => ({ ok: true, version: GILD_VERSION }),
  );
  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics of the controller",
        description:
          "The Prometheus text format; the scrape token (metrics.token in the data directory) opens this route and nothing else.",
        tags: ["meta"],
        produces: ["text/plain"],
        response: {
          200: { description: "the metrics", content: { "text/plain": { schema: { type: "string" } } } },
          ...errorResponses,
        },
      },
    },
    async (_req, reply) => {
      const { contentType, body } = await metrics.text();
      return reply.type(contentType).send(body);
    },
  );
  // Each route group is a plugin given only what it uses.
  await app.register(enrollRoutes, { enrollment, log, tls: deps.tls });
  await app.register(hostRoutes, { hub, store });
  await app.register(windowRoutes, { store, rolloutExecutor, hostUpdateExecutor, now: deps.now ?? Date.now });
  await app.register(tokenRoutes, { config, enrollment, store });
  await app.register(imageRoutes, { images, store });
  await app.register(appRoutes, { apps, images });
  await app.register(rolloutRoutes, { hub, rollouts, store });
  await app.register(hostUpdateRoutes, { hub, hostUpdates, hostUpdateExecutor, store });
  await app.register(auditRoutes, { audit, store });
  await app.register(backupRoutes, { config, store, now: deps.now ?? Date.now });
  await app.register(peerRoutes, { config, store, tls: deps.tls, now: deps.now ?? Date.now });
  await app.register(userRoutes, { store, sessions, now: deps.now ?? Date.now });
  await app.register(sessionRoutes, {
    store,
    audit,
    sessions,
    adminToken: deps.adminToken,
    now: deps.now ?? Date.now,
  });
  await app.register(dashboardRoutes, {
    dir: deps.dashboardDir === undefined ? locateDashboard() : deps.dashboardDir,
    log,
  });

  app.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    connections.requested(req.socket);
    try {
      const path = new URL(req.url ?? "/", "http://controller").pathname;
      if (path === "/v1/agent") {
        const hostId = authenticateHost(req, store);
        connections.authenticated(req.socket);
        hub.handleUpgrade(req, socket, head, hostId);
      } else if (path.startsWith("/v1/artifacts/")) {
        const hostId = authenticateHost(req, store);
        connections.authenticated(req.socket);
        transfers.handleUpgrade(req, socket, head, hostId, transfers.resolve(req));
      } else {
        refuseUpgrade(socket, new GildError("GILD_NOT_FOUND", `no WebSocket endpoint at ${path}`));
      }
    } catch (err) {
      const gild = toGildError(err);
      log.warn(
        { code: gild.code, url: req.url, remote: req.socket.remoteAddress },
        "WebSocket upgrade refused",
      );
      refuseUpgrade(socket, gild);
    }
  });

  await app.ready();
  return {
    app,
    services,
    async close() {
      rolloutExecutor.close();
      hostUpdateExecutor.close();
      commands.close();
      audit.close();
      hub.close();
      transfers.close();
      await app.close();
    },
  };
}
