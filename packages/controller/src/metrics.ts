import type { WaveJobEvent } from "@gild/core";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AgentHub } from "./agent-hub.js";
import type { CommandService } from "./command-service.js";
import type { ConnectionGate } from "./connection-gate.js";
import type { Store } from "./store/store.js";

/** Seconds: from a sub-second command to a switch held to a five-minute health gate. */
const COMMAND_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Seconds: a wave takes from seconds (a canary) to the better part of an hour. */
const WAVE_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
/** Seconds: SQLite transactions take well under a millisecond to tens of ms on a busy disk. */
const WRITE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** The wave jobs whose wave durations are measured. */
export type WaveJobKind = "rollout" | "host-update";

/**
 * The controller's Prometheus metrics (GET /metrics, text format). Every label takes values from a
 * small fixed set (states, command kinds, outcomes) or the image lines, which the operator names: no
 * host ids, no request paths. Counts of what is stored are read from the store at scrape time.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly commands: Counter<"kind" | "outcome">;
  private readonly commandSeconds: Histogram<"kind" | "outcome">;
  private readonly waveSeconds: Histogram<"job" | "outcome">;
  private readonly sentBytes: Counter<"line">;
  private readonly writeSeconds: Histogram;
  /** When each running wave started, by job and wave: at most one entry per active job. */
  private readonly waveStarts = new Map<string, number>();

  constructor(deps: { store: Store; hub: AgentHub; commands: CommandService; connections: ConnectionGate }) {
    const registers = [this.registry];
    const { store, hub, connections } = deps;
    // prom-client's default set names gauges "..._total", which promtool refuses: these three instead.
    new Gauge({
      name: "gild_controller_resident_memory_bytes",
      help: "The controller process's resident set size.",
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Gauge({
      name: "gild_controller_heap_used_bytes",
      help: "V8 heap in use by the controller.",
      registers,
      collect() {
        this.set(process.memoryUsage().heapUsed);
      },
    });
    let cpuSeen = 0;
    new Counter({
      name: "gild_controller_cpu_seconds_total",
      help: "User and system CPU time the controller process used.",
      registers,
      collect() {
        const { user, system } = process.cpuUsage();
        const total = (user + system) / 1e6;
        if (total > cpuSeen) this.inc(total - cpuSeen);
        cpuSeen = total;
      },
    });
    new Gauge({
      name: "gild_hosts",
      help: "Enrolled hosts by state (online: a session that said Hello and answers pings).",
      labelNames: ["state"],
      registers,
      collect() {
        const counts = store.hosts.countsByState();
        for (const state of ["online", "offline"]) this.set({ state }, counts.get(state) ?? 0);
      },
    });
    new Gauge({
      name: "gild_agent_sessions",
      help: "Agent control sessions open now (after Hello).",
      registers,
      collect() {
        this.set(hub.sessionCount);
      },
    });
    new Gauge({
      name: "gild_rollouts",
      help: "Rollouts by state.",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of store.rollouts.countsByState()) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "gild_host_updates",
      help: "Host-update jobs by state.",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of store.hostUpdates.countsByState()) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "gild_image_versions",
      help: "Image and code versions by status (candidate, stable, bad, ...).",
      labelNames: ["status"],
      registers,
      collect() {
        this.reset();
        for (const [status, n] of store.images.countsByStatus()) this.set({ status }, n);
      },
    });
    let refusedSeen = 0;
    new Counter({
      name: "gild_refused_connections_total",
      help: "Connections refused before they authenticated (too many waiting, or too slow to).",
      registers,
      collect() {
        const refused = connections.refusedCount;
        if (refused > refusedSeen) this.inc(refused - refusedSeen);
        refusedSeen = refused;
      },
    });
    this.commands = new Counter({
      name: "gild_commands_total",
      help: "Commands to agents that ended, by kind and outcome.",
      labelNames: ["kind", "outcome"],
      registers,
    });
    this.commandSeconds = new Histogram({
      name: "gild_command_duration_seconds",
      help: "From a command's creation to its final status, by kind and outcome.",
      labelNames: ["kind", "outcome"],
      buckets: COMMAND_BUCKETS,
      registers,
    });
    this.waveSeconds = new Histogram({
      name: "gild_wave_duration_seconds",
      help: "From a wave's start to its completion or failure, by job kind and outcome.",
      labelNames: ["job", "outcome"],
      buckets: WAVE_BUCKETS,
      registers,
    });
    this.sentBytes = new Counter({
      name: "gild_artifact_sent_bytes_total",
      help: "Artifact (send stream) bytes the controller sent to hosts, by image line.",
      labelNames: ["line"],
      registers,
    });
    this.writeSeconds = new Histogram({
      name: "gild_db_transaction_seconds",
      help: "How long the controller's store transactions took.",
      buckets: WRITE_BUCKETS,
      registers,
    });
    deps.commands.addListener({
      onFinished: (record) => {
        const labels = { kind: record.kind, outcome: record.state };
        this.commands.inc(labels);
        this.commandSeconds.observe(labels, Math.max(0, record.updatedAt - record.createdAt) / 1000);
      },
    });
    store.onTransaction = (seconds) => this.writeSeconds.observe(seconds);
  }

  /** A wave job's stored events: a wave's start begins its clock, its end observes it. */
  jobEvents(job: WaveJobKind, jobId: string, events: readonly WaveJobEvent<string>[]): void {
    for (const event of events) {
      if (event.wave === undefined) continue;
      const key = `${job}:${jobId}:${event.wave}`;
      if (event.kind === "wave-started") this.waveStarts.set(key, event.at);
      else if (event.kind === "wave-completed" || event.kind === "wave-failed") {
        const started = this.waveStarts.get(key);
        this.waveStarts.delete(key);
        // A wave that started before this controller did has no start here: not measured.
        if (started !== undefined) {
          const outcome = event.kind === "wave-completed" ? "completed" : "failed";
          this.waveSeconds.observe({ job, outcome }, Math.max(0, event.at - started) / 1000);
        }
      }
    }
  }

  /** A job that ended: forget the clocks of its waves that never completed (aborted, failed). */
  jobEnded(job: WaveJobKind, jobId: string): void {
    for (const key of this.waveStarts.keys())
      if (key.startsWith(`${job}:${jobId}:`)) this.waveStarts.delete(key);
  }

  /** Artifact bytes written to a host's socket. */
  artifactBytesSent(line: string, bytes: number): void {
    if (bytes > 0) this.sentBytes.inc({ line }, bytes);
  }

  /** The text format, for GET /metrics. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
