import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "@gild/core";
import type { CommandKind, CommandStatus } from "@gild/protocol";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MetricsListen } from "./metrics-listen.js";

/** Seconds: a switch held to its health gate takes up to minutes; a pull of a big image too. */
const COMMAND_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/**
 * The agent's Prometheus metrics: transfers, switches, health and restarts of its apps. Labels are
 * command kinds, outcomes and app names (at most 200 apps per host: bounded).
 */
export class AgentMetrics {
  readonly registry = new Registry();
  private readonly commands: Counter<"kind" | "outcome">;
  private readonly commandSeconds: Histogram<"kind">;
  private readonly transferBytes: Counter;
  private readonly switches: Counter<"outcome">;
  private readonly healthChanges: Counter<"app" | "health">;
  private readonly healthy: Gauge<"app">;
  private readonly restarts: Counter<"app">;

  constructor() {
    const registers = [this.registry];
    this.commands = new Counter({
      name: "gild_agent_commands_total",
      help: "Commands from the controller that ended here, by kind and outcome.",
      labelNames: ["kind", "outcome"],
      registers,
    });
    this.commandSeconds = new Histogram({
      name: "gild_agent_command_duration_seconds",
      help: "How long commands ran here, by kind.",
      labelNames: ["kind"],
      buckets: COMMAND_BUCKETS,
      registers,
    });
    this.transferBytes = new Counter({
      name: "gild_agent_transfer_bytes_total",
      help: "Image bytes downloaded by pulls that ended (resumed bytes count once).",
      registers,
    });
    this.switches = new Counter({
      name: "gild_agent_switches_total",
      help: "App switches (deploys and rollbacks) by outcome: switched, unchanged, rolled-back, rollback-failed, failed.",
      labelNames: ["outcome"],
      registers,
    });
    this.healthChanges = new Counter({
      name: "gild_agent_health_changes_total",
      help: "Health probe verdict changes of running apps, by app and the health it changed to.",
      labelNames: ["app", "health"],
      registers,
    });
    this.healthy = new Gauge({
      name: "gild_agent_app_healthy",
      help: "1 when the app's current generation passes its probe, 0 when it does not.",
      labelNames: ["app"],
      registers,
    });
    this.restarts = new Counter({
      name: "gild_agent_app_restarts_total",
      help: "Containers that ended on their own and were started again, by app.",
      labelNames: ["app"],
      registers,
    });
    new Gauge({
      name: "gild_agent_resident_memory_bytes",
      help: "The agent process's resident set size.",
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
  }

  /** A command's final status, as journaled and sent. */
  commandEnded(kind: CommandKind, final: CommandStatus, ms: number): void {
    const outcome = final.state === "succeeded" ? "succeeded" : "failed";
    this.commands.inc({ kind, outcome });
    this.commandSeconds.observe({ kind }, Math.max(0, ms) / 1000);
    if (kind === "pullImage") this.transferBytes.inc(Number(final.pull?.bytesTransferred ?? 0));
    if (kind === "deployApp" || kind === "rollbackApp") {
      const deploy = final.deploy;
      const switched = !deploy
        ? "failed"
        : deploy.rolledBack
          ? deploy.rollbackUnhealthy
            ? "rollback-failed"
            : "rolled-back"
          : deploy.unchanged
            ? "unchanged"
            : outcome === "succeeded"
              ? "switched"
              : "failed";
      this.switches.inc({ outcome: switched });
    }
  }

  /** A running app's probe verdict changed. */
  healthChanged(app: string, health: string): void {
    this.healthChanges.inc({ app, health });
    this.healthIs(app, health);
  }

  /** A generation's health as its monitor starts (a switch that passed its gate starts healthy). */
  healthIs(app: string, health: string): void {
    this.healthy.set({ app }, health === "healthy" ? 1 : 0);
  }

  /** An app was removed: its series go with it. */
  appRemoved(app: string): void {
    this.healthy.remove({ app });
  }

  restarted(app: string): void {
    this.restarts.inc({ app });
  }
}

/** Serve GET /metrics (and nothing else) on `listen`; plain HTTP, meant for localhost. */
export async function serveMetrics(
  listen: MetricsListen,
  metrics: AgentMetrics,
  log: Logger,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: only GET /metrics\n");
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body),
      (err: unknown) => {
        log.warn({ err: (err as Error).message }, "metrics could not be collected");
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics failed\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: listen.host, port }, "metrics listening");
  return { server, port };
}
