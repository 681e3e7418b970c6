import { isAbsolute, join, resolve } from "node:path";
import {
  assertNoConfigProblems,
  countField,
  DURATION_LIMITS,
  durationField,
  type FieldProblem,
  logLevelField,
  MAX_DURATION_MS,
  sizeField,
  unknownFields,
} from "@gild/core";
import { type DatabaseLocation, isPostgresUrl } from "./store/db.js";

/** The controller's configuration as an operator writes it (config file and flags), all optional. */
/** Audit entries are kept 90 days unless the config says otherwise (at most a year). */
const DEFAULT_AUDIT_RETENTION_MS = 90 * 86_400_000;

/** A dashboard sign-in lasts a working day unless the config says otherwise (at most 30 days). */
const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;

export interface RawControllerConfig {
  dataDir?: string;
  /** The store: a postgres:// URL, or the path of an SQLite file (default <dataDir>/gild.db). */
  database?: string;
  pool?: string;
  /** host:port to listen on. */
  listen?: string;
  /** URL agents and the CLI use to reach this controller; default derived from `listen`. */
  publicUrl?: string;
  /** Extra DNS names / IPs for the server certificate. */
  tlsNames?: string[];
  /** Plain http/ws without TLS: development only. */
  insecureDev?: boolean;
  /** WebSocket ping interval to agents (duration). */
  heartbeatInterval?: string | number;
  /** After a controller start, how long agents get to reconnect before they are marked offline. */
  offlineGrace?: string | number;
  /** Default lifetime of join tokens. */
  tokenTtl?: string | number;
  auditRetention?: string | number;
  /** How long a dashboard sign-in lasts (never past its token's expiry). */
  sessionTtl?: string | number;
  /** How long a new connection may take for its TLS handshake and its first request. */
  handshakeTimeout?: string | number;
  /** How many connections may be open without having authenticated yet; more are closed at once. */
  maxPendingConnections?: number | string;
  /** Per-host transfer rate limit (bytes/s or "50MiB"), 0 for none. */
  transferRateLimit?: string | number;
  /** Send streams with --compressed-data where both ends support it. */
  compressedStreams?: boolean;
  logLevel?: string;
}

/** The resolved, frozen configuration every part of the controller receives. */
export interface ControllerConfig {
  dataDir: string;
  /** Where the store lives (SQLite by default, at paths.database). */
  database: DatabaseLocation;
  pool: string;
  listenHost: string;
  listenPort: number;
  publicUrl: string;
  tlsNames: readonly string[];
  insecureDev: boolean;
  heartbeatIntervalMs: number;
  offlineGraceMs: number;
  tokenTtlMs: number;
  /** How long audit entries are kept. */
  auditRetentionMs: number;
  /** How long a dashboard session lasts. */
  sessionTtlMs: number;
  handshakeTimeoutMs: number;
  maxPendingConnections: number;
  transferRateLimit: number;
  compressedStreams: boolean;
  logLevel: string;
  paths: {
    database: string;
    adminToken: string;
    /** The token that may read GET /metrics and nothing else (Prometheus's scrape credential). */
    metricsToken: string;
    caCert: string;
    caKey: string;
    serverCert: string;
    serverKey: string;
    signingKey: string;
    signingPublicKey: string;
    artifacts: string;
    /** Where `gild backup` writes the copies of an SQLite store. */
    backups: string;
    cliConfig: string;
  };
}

/**
 * A new connection gets this long for its TLS handshake and its first request (Node's own default
 * would hold a connection that never starts TLS for 120 s), and this many connections may be open
 * without having authenticated yet: a flood of them is bounded in time and in memory.
 */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_PENDING_CONNECTIONS = 1024;

export const DEFAULT_CONTROLLER_DIR = "/var/lib/gild/controller";
export const DEFAULT_CONTROLLER_PORT = 7443;

const KNOWN_SETTINGS = [
  "dataDir",
  "database",
  "pool",
  "listen",
  "publicUrl",
  "tlsNames",
  "insecureDev",
  "heartbeatInterval",
  "offlineGrace",
  "tokenTtl",
  "auditRetention",
  "sessionTtl",
  "handshakeTimeout",
  "maxPendingConnections",
  "transferRateLimit",
  "compressedStreams",
  "logLevel",
] as const satisfies ReadonlyArray<keyof RawControllerConfig>;

/** The `database` setting: a postgres:// URL, or an absolute path of an SQLite file. */
function databaseField(raw: unknown, sqliteDefault: string, problems: FieldProblem[]): DatabaseLocation {
  if (raw === undefined) return { kind: "sqlite", path: sqliteDefault };
  if (typeof raw !== "string" || raw === "") {
    problems.push({ path: "database", message: "must be a postgres:// URL or an absolute path" });
    return { kind: "sqlite", path: sqliteDefault };
  }
  if (isPostgresUrl(raw)) {
    try {
      new URL(raw);
    } catch {
      problems.push({ path: "database", message: "is not a valid postgres:// URL" });
    }
    return { kind: "postgres", url: raw };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    problems.push({ path: "database", message: "only postgres:// (or postgresql://) URLs are supported" });
  } else if (!isAbsolute(raw)) {
    problems.push({ path: "database", message: "must be a postgres:// URL or an absolute path" });
  }
  return { kind: "sqlite", path: raw };
}

/** Validate the whole raw config at once (every problem listed), apply defaults, freeze. */
export function resolveControllerConfig(raw: RawControllerConfig): ControllerConfig {
  const problems: FieldProblem[] = [];
  unknownFields(raw, KNOWN_SETTINGS, problems);

  const dataDir = resolve(raw.dataDir ?? DEFAULT_CONTROLLER_DIR);
  const pool = resolve(raw.pool ?? join(dataDir, "pool"));
  if (raw.dataDir !== undefined && !isAbsolute(raw.dataDir)) {
    problems.push({ path: "dataDir", message: "must be an absolute path" });
  }
  const listen = raw.listen ?? `0.0.0.0:${DEFAULT_CONTROLLER_PORT}`;
  const match = /^(.*):(\d{1,5})$/.exec(listen);
  const listenHost = match ? (match[1] as string).replace(/^\[(.*)\]$/, "$1") : "";
  const listenPort = match ? Number(match[2]) : 0;
  if (!match || listenPort > 65535 || listenHost === "") {
    problems.push({ path: "listen", message: `"${listen}" is not host:port` });
  }
  const insecureDev = raw.insecureDev ?? false;
  const scheme = insecureDev ? "http" : "https";
  const publicHost = listenHost === "0.0.0.0" || listenHost === "::" ? "127.0.0.1" : listenHost;
  const publicUrl = (
    raw.publicUrl ?? `${scheme}://${publicHost.includes(":") ? `[${publicHost}]` : publicHost}:${listenPort}`
  ).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+$/.test(publicUrl))
    problems.push({ path: "publicUrl", message: "must be http(s)://host:port" });
  if (!insecureDev && publicUrl.startsWith("http://")) {
    problems.push({ path: "publicUrl", message: "http:// needs insecureDev; the controller serves TLS" });
  }
  const transferRateLimit = sizeField(raw.transferRateLimit, 0, "transferRateLimit", problems);
  const logLevel = logLevelField(raw.logLevel, problems);
  const tlsNames = raw.tlsNames ?? [];
  if (!Array.isArray(tlsNames) || tlsNames.some((n) => typeof n !== "string")) {
    problems.push({ path: "tlsNames", message: "must be a list of names" });
  }
  const database = databaseField(raw.database, join(dataDir, "gild.db"), problems);
  const config: ControllerConfig = {
    dataDir,
    database,
    pool,
    listenHost,
    listenPort,
    publicUrl,
    tlsNames,
    insecureDev,
    heartbeatIntervalMs: durationField(
      raw.heartbeatInterval,
      20_000,
      "heartbeatInterval",
      problems,
      DURATION_LIMITS.liveness,
    ),
    offlineGraceMs: durationField(
      raw.offlineGrace,
      45_000,
      "offlineGrace",
      problems,
      DURATION_LIMITS.offlineGrace,
    ),
    tokenTtlMs: durationField(raw.tokenTtl, 3_600_000, "tokenTtl", problems, DURATION_LIMITS.tokenTtl),
    auditRetentionMs: durationField(
      raw.auditRetention,
      DEFAULT_AUDIT_RETENTION_MS,
      "auditRetention",
      problems,
      MAX_DURATION_MS,
    ),
    sessionTtlMs: durationField(
      raw.sessionTtl,
      DEFAULT_SESSION_TTL_MS,
      "sessionTtl",
      problems,
      DURATION_LIMITS.tokenTtl,
    ),
    handshakeTimeoutMs: durationField(
      raw.handshakeTimeout,
      DEFAULT_HANDSHAKE_TIMEOUT_MS,
      "handshakeTimeout",
      problems,
      DURATION_LIMITS.handshake,
    ),
    maxPendingConnections: countField(
      raw.maxPendingConnections,
      DEFAULT_MAX_PENDING_CONNECTIONS,
      "maxPendingConnections",
      problems,
      { min: 16, max: 65_536 },
    ),
    transferRateLimit,
    compressedStreams: raw.compressedStreams ?? true,
    logLevel,
    paths: {
      database: database.kind === "sqlite" ? database.path : join(dataDir, "gild.db"),
      adminToken: join(dataDir, "admin.token"),
      metricsToken: join(dataDir, "metrics.token"),
      caCert: join(dataDir, "tls", "ca.pem"),
      caKey: join(dataDir, "tls", "ca.key"),
      serverCert: join(dataDir, "tls", "server.pem"),
      serverKey: join(dataDir, "tls", "server.key"),
      signingKey: join(dataDir, "signing.key"),
      signingPublicKey: join(dataDir, "signing.pub"),
      artifacts: join(dataDir, "artifacts"),
      backups: join(dataDir, "backups"),
      cliConfig: join(dataDir, "cli.json"),
    },
  };
  if (config.handshakeTimeoutMs < 1000)
    problems.push({ path: "handshakeTimeout", message: "must be at least 1s" });
  assertNoConfigProblems("controller", problems);
  return Object.freeze(config);
}
