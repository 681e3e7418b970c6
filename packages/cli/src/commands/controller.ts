import type { RawControllerConfig } from "@gild/controller";
import type { Command } from "commander";
import { readJsonConfigFile } from "../config-file.js";
import type { CliContext } from "../context.js";
import { collect } from "./options.js";

interface RunFlags {
  config?: string;
  dataDir?: string;
  pool?: string;
  listen?: string;
  publicUrl?: string;
  tlsName?: string[];
  insecureDev?: boolean;
  database?: string;
  heartbeatInterval?: string;
  offlineGrace?: string;
  tokenTtl?: string;
  auditRetention?: string;
  handshakeTimeout?: string;
  maxPendingConnections?: string;
  transferRateLimit?: string;
  compressedStreams?: boolean;
  logLevel?: string;
}

/** `gild controller run`: the controller daemon. */
export function registerControllerCommands(program: Command, _ctx: CliContext): void {
  const controller = program.command("controller").description("the controller daemon");
  controller
    .command("run")
    .description("run the controller (HTTP API, agent hub, image store) until SIGTERM")
    .option("--config <file>", "JSON config file; flags override it")
    .option("--data-dir <dir>", "state, keys and artifacts (default /var/lib/gild/controller)")
    .option(
      "--database <url|path>",
      "the store: postgres://user@host/db, or an SQLite file (default <data-dir>/gild.db)",
    )
    .option("--pool <path>", "btrfs pool for golden images (default <data-dir>/pool)")
    .option("--listen <host:port>", "address to listen on (default 0.0.0.0:7443)")
    .option("--public-url <url>", "URL agents and the CLI use (default from --listen)")
    .option("--tls-name <name>", "extra DNS name or IP for the server certificate (repeatable)", collect)
    .option("--insecure-dev", "plain http/ws without TLS: development only, logs a warning")
    .option("--heartbeat-interval <duration>", "WebSocket ping interval to agents (default 20s, at most 5m)")
    .option(
      "--offline-grace <duration>",
      "after a start, time agents get to reconnect before they show offline (default 45s, at most 1d)",
    )
    .option("--token-ttl <duration>", "default lifetime of join tokens (default 1h, at most 30d)")
    .option("--audit-retention <duration>", "how long audit entries are kept (default 90d, at most 365d)")
    .option(
      "--handshake-timeout <duration>",
      "time a new connection gets for TLS and its first request (default 10s, at most 1m)",
    )
    .option(
      "--max-pending-connections <n>",
      "connections that may be open before authenticating; more are closed (default 1024, 16 to 65536)",
    )
    .option("--transfer-rate-limit <rate>", "per-host image transfer limit, e.g. 50MiB (default none)")
    .option("--no-compressed-streams", "never send streams with --compressed-data")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace (default info)")
    .action(async (flags: RunFlags) => {
      const fromFile: RawControllerConfig = flags.config
        ? (readJsonConfigFile(flags.config) as RawControllerConfig)
        : {};
      const raw: RawControllerConfig = { ...fromFile };
      if (flags.dataDir !== undefined) raw.dataDir = flags.dataDir;
      if (flags.database !== undefined) raw.database = flags.database;
      if (flags.pool !== undefined) raw.pool = flags.pool;
      if (flags.listen !== undefined) raw.listen = flags.listen;
      if (flags.publicUrl !== undefined) raw.publicUrl = flags.publicUrl;
      if (flags.tlsName !== undefined) raw.tlsNames = flags.tlsName;
      if (flags.insecureDev) raw.insecureDev = true;
      if (flags.heartbeatInterval !== undefined) raw.heartbeatInterval = flags.heartbeatInterval;
      if (flags.offlineGrace !== undefined) raw.offlineGrace = flags.offlineGrace;
      if (flags.tokenTtl !== undefined) raw.tokenTtl = flags.tokenTtl;
      if (flags.auditRetention !== undefined) raw.auditRetention = flags.auditRetention;
      if (flags.handshakeTimeout !== undefined) raw.handshakeTimeout = flags.handshakeTimeout;
      if (flags.maxPendingConnections !== undefined) raw.maxPendingConnections = flags.maxPendingConnections;
      if (flags.transferRateLimit !== undefined) raw.transferRateLimit = flags.transferRateLimit;
      if (flags.compressedStreams === false) raw.compressedStreams = false;
      if (flags.logLevel !== undefined) raw.logLevel = flags.logLevel;
      // The daemon's code is loaded only to run it: every other gild command starts faster without it.
      const { resolveControllerConfig, runController } = await import("@gild/controller");
      await runController(resolveControllerConfig(raw));
      // Stopped on a signal: leave now, whatever timers or sockets a library still holds.
      process.exit(0);
    });
}
