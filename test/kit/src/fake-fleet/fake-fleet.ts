import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { RequestOptions } from "node:https";
import { createSecureContext, type SecureContext } from "node:tls";
import {
  type AgentMessage,
  type AppInstance,
  type Command,
  type CommandStatus,
  type ControllerMessage,
  commandKindOf,
  decodeControllerMessage,
  encodeAgentMessage,
  type ImageCopy,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "@gild/protocol";

/** A status with nothing but its id and state. */
const bare = (commandId: string, state: CommandStatus["state"]): CommandStatus => ({
  commandId,
  state,
  progress: null,
  error: null,
  replayed: false,
});

import WebSocket from "ws";
import { mapLimit } from "../fleet/parallel.js";
import { type FakeCommandOutcome, runFakeCommand } from "./fake-commands.js";

/** One joined host, as the controller knows it. */
export interface JoinedHost {
  name: string;
  hostId: string;
  credential: string;
}

/** A command as a fake agent received it. */
export interface ReceivedCommand {
  /** Wall clock (ms, fractional) when the frame was handled. */
  at: number;
  kind: string;
  id: string;
}

/** One simulated server: its control socket and the state a real agent would read from its pool. */
export interface FakeHost extends JoinedHost {
  index: number;
  ws: WebSocket | undefined;
  seq: number;
  welcomed: boolean;
  connects: number;
  /** Failed attempts since the last Welcome: what the reconnect delay grows with. */
  attempt: number;
  /** Wall clock of the last Welcome (0 before the first). */
  welcomedAt: number;
  /** Pings the controller sent on the current connection. */
  pings: number;
  images: ImageCopy[];
  app: AppInstance;
  /** Commands by id: the final status once sent (repeated ids get it again, marked replayed). */
  finals: Map<string, CommandStatus>;
  running: Set<string>;
  received: ReceivedCommand[];
  /** When the host last reported (status, then inventory) a finished switch to a new version. */
  deployReportedAt: number | null;
  /** When the host reported a finished pull. */
  pullReportedAt: number | null;
}

export interface FleetCounters {
  framesIn: number;
  framesOut: number;
  bytesOut: number;
  pings: number;
  commands: Record<string, number>;
  replays: number;
  /** Connections the controller closed (or lost) after Welcome while the fleet was not stopping. */
  unexpectedCloses: number;
  reconnects: number;
  errors: number;
  refusals: number;
  /** Deploys refused because the image was not on the host (the controller switched too early). */
  deploysWithoutImage: number;
  lastError: string;
}

export interface FakeFleetOptions {
  controllerUrl: string;
  caPem: string;
  joined: JoinedHost[];
  /** uuid of the controller's subvolume of the version every host starts with. */
  startUuid: string;
  line: string;
  startVersion: number;
  app: string;
  labels: Record<string, string>;
  /** How long a command "runs", ms: uniform in [min, max]. */
  commandDelayMs: [number, number];
  /**
   * The wait before reconnect attempt `attempt` (0 right after a drop, counting failed attempts since
   * the last Welcome). Pass the agent's backoffDelay to reconnect exactly as real agents do; the default
   * waits 1-3 s after a drop and 2-5 s after a failed attempt.
   */
  reconnectDelayMs?: (attempt: number) => number;
}

const now = () => performance.timeOrigin + performance.now();
const GIB = 1024 ** 3;
const HEARTBEAT_TICK_MS = 100;

const defaultReconnectDelay = (attempt: number) =>
  attempt === 0 ? 1_000 + Math.random() * 2_000 : 2_000 + Math.random() * 3_000;

/**
 * N fake agents in this process, each with its own WebSocket to the controller, speaking the real
 * protocol: Hello, Inventory, Heartbeats, and CommandStatus answers. Commands "run" for a random
 * delay, then succeed and the inventory changes the way a real agent's pool and apps would.
 */
export class FakeFleet {
  readonly hosts: FakeHost[];
  readonly counters: FleetCounters = {
    framesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    pings: 0,
    commands: {},
    replays: 0,
    unexpectedCloses: 0,
    reconnects: 0,
    errors: 0,
    refusals: 0,
    deploysWithoutImage: 0,
    lastError: "",
  };
  /** Wall clock of the last frame in or out: the rollout is stalled when this stops moving. */
  lastActivityAt = now();
  pullsDone = 0;
  deploysDone = 0;
  /**
   * The controller's CA, pinned (its certificate names the listen address, not what is dialled), in
   * one secure context: parsing the CA once per connection costs 10,000 hosts real time.
   */
  private readonly tls: RequestOptions & { secureContext: SecureContext };
  private readonly wsUrl: string;
  private readonly reconnectDelay: (attempt: number) => number;
  /** "change" after every Welcome, close and ping: what until() re-checks its condition on. */
  private readonly events = new EventEmitter();
  private heartbeatMs = 20_000;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatTick = 0;
  private stopping = false;

  constructor(private readonly options: FakeFleetOptions) {
    this.tls = {
      secureContext: createSecureContext({ ca: options.caPem }),
      checkServerIdentity: () => undefined,
    };
    this.wsUrl = `${options.controllerUrl.replace(/^https/, "wss")}/v1/agent`;
    this.reconnectDelay = options.reconnectDelayMs ?? defaultReconnectDelay;
    this.events.setMaxListeners(0);
    const since = Date.now() - 86_400_000;
    this.hosts = options.joined.map((j, index) => ({
      ...j,
      index,
      ws: undefined,
      seq: 0,
      welcomed: false,
      connects: 0,
      attempt: 0,
      welcomedAt: 0,
      pings: 0,
      images: [
        {
          line: options.line,
          version: options.startVersion,
          uuid: randomUUID(),
          receivedUuid: options.startUuid,
        },
      ],
      app: {
        name: options.app,
        generation: 1,
        imageLine: options.line,
        imageVersion: options.startVersion,
        state: "running",
        health: "healthy",
        healthDetail: "running (no probe)",
        healthSinceMs: since,
        healthyForMs: 0,
        previousGeneration: 0,
        previousImageVersion: 0,
        generations: [1],
        specHash: "",
        codeLine: "",
        codeVersion: 0,
        previousCodeVersion: 0,
      },
      finals: new Map(),
      running: new Set(),
      received: [],
      deployReportedAt: null,
      pullReportedAt: null,
    }));
  }

  /** Hosts whose current connection got its Welcome. */
  welcomedCount(): number {
    return this.hosts.reduce((n, h) => n + (h.welcomed ? 1 : 0), 0);
  }

  /** Connect every host (at most `concurrency` handshakes at once); resolves when all are welcomed. */
  async connectAll(concurrency: number, onProgress?: (welcomed: number) => void): Promise<void> {
    let welcomed = 0;
    await mapLimit(this.hosts, concurrency, async (host) => {
      await this.connect(host);
      welcomed += 1;
      if (welcomed % 1000 === 0) onProgress?.(welcomed);
    });
    this.heartbeatTimer = setInterval(() => this.heartbeats(), HEARTBEAT_TICK_MS);
    this.heartbeatTimer.unref();
  }

  /**
   * Resolve once `check` holds, re-checked after every Welcome, close and ping (no polling); reject
   * at the deadline with `what` and how many hosts were welcomed then.
   */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.events.off("change", onChange);
        if (err) reject(err);
        else resolve();
      };
      const onChange = () => {
        if (check()) done();
      };
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what} (${this.welcomedCount()} of ${this.hosts.length} welcomed; last error: ${this.counters.lastError || "none"})`,
            ),
          ),
        timeoutMs,
      );
      this.events.on("change", onChange);
      onChange();
    });
  }

  /** Stop reconnecting and heartbeating (before the controller goes away); sockets stay open. */
  quiesce(): void {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
  }

  /** Close every socket without reconnecting. */
  close(): void {
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    for (const host of this.hosts) host.ws?.terminate();
  }

  /** One connection attempt: resolves on Welcome, rejects when the socket closes before it. */
  private connect(host: FakeHost): Promise<void> {
    return new Promise((resolve, reject) => {
      host.welcomed = false;
      host.seq = 0;
      host.pings = 0;
      host.connects += 1;
      const ws = new WebSocket(this.wsUrl, {
        headers: { authorization: `Bearer ${host.credential}` },
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: 60_000,
        ...this.tls,
      });
      host.ws = ws;
      let settled = false;
      ws.on("open", () => {
        this.send(host, {
          hello: {
            protocolVersion: PROTOCOL_VERSION,
            hostId: host.hostId,
            hostName: host.name,
            agentVersion: "fake-agent",
            kernelVersion: "6.1.0-fake",
            btrfsProgsVersion: "6.2",
            labels: this.options.labels,
            facts: { arch: "x86_64", os: "fake", runtime: "fake" },
            maxStreamVersion: 2,
          },
        });
      });
      ws.on("message", (data: Buffer, isBinary) => {
        if (!isBinary) return;
        let message: ControllerMessage;
        try {
          message = decodeControllerMessage(data, PROTOCOL_VERSION);
        } catch (err) {
          this.counters.errors += 1;
          this.counters.lastError = `${host.name}: bad frame from the controller: ${(err as Error).message}`;
          return;
        }
        this.counters.framesIn += 1;
        this.lastActivityAt = now();
        if ("welcome" in message) {
          host.welcomed = true;
          host.welcomedAt = now();
          host.attempt = 0;
          this.heartbeatMs = message.welcome.heartbeatIntervalMs || this.heartbeatMs;
          this.sendInventory(host);
          if (!settled) {
            settled = true;
            resolve();
          }
          this.events.emit("change");
        } else if ("command" in message) {
          this.onCommand(host, message.command);
        } else {
          this.counters.refusals += 1;
          this.counters.lastError = `refusal: ${message.refusal.code} ${message.refusal.message}`;
        }
      });
      // ws answers every ping with a pong by itself; the count shows the controller's liveness checks.
      ws.on("ping", () => {
        host.pings += 1;
        this.counters.pings += 1;
        this.events.emit("change");
      });
      ws.on("unexpected-response", (_req, res) => {
        res.resume();
        this.counters.errors += 1;
        this.counters.lastError = `${host.name}: upgrade answered ${res.statusCode}`;
        ws.terminate();
      });
      ws.on("error", (err) => {
        this.counters.errors += 1;
        this.counters.lastError = `${host.name}: ${err.message}`;
      });
      ws.on("close", (code, reason) => {
        if (host.ws !== ws) return;
        host.welcomed = false;
        this.events.emit("change");
        if (!settled) {
          settled = true;
          reject(new Error(`${host.name}: closed before Welcome (${code} ${reason.toString()})`));
          return;
        }
        if (this.stopping) return;
        this.counters.unexpectedCloses += 1;
        this.counters.lastError = `${host.name}: closed ${code} ${reason.toString()}`;
        // A real agent reconnects with backoff; the controller then re-sends its open commands.
        setTimeout(() => this.reconnect(host), this.reconnectDelay(host.attempt++));
      });
    });
  }

  private reconnect(host: FakeHost): void {
    if (this.stopping) return;
    this.counters.reconnects += 1;
    this.connect(host).catch(() =>
      setTimeout(() => this.reconnect(host), this.reconnectDelay(host.attempt++)),
    );
  }

  private send(host: FakeHost, message: AgentMessage): void {
    const ws = host.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const bytes = encodeAgentMessage(message, PROTOCOL_VERSION, ++host.seq);
    ws.send(bytes);
    this.counters.framesOut += 1;
    this.counters.bytesOut += bytes.byteLength;
    this.lastActivityAt = now();
  }

  private sendInventory(host: FakeHost): void {
    this.send(host, {
      inventory: {
        images: host.images,
        poolFreeBytes: 60 * GIB,
        poolTotalBytes: 100 * GIB,
        apps: [host.app],
        reportedAtMs: Date.now(),
        facts: {},
      },
    });
  }

  private heartbeats(): void {
    // Each host heartbeats once per interval, spread evenly over it (bursts would delay this
    // process's timestamps of the commands it receives).
    const slots = Math.max(1, Math.round(this.heartbeatMs / HEARTBEAT_TICK_MS));
    const slot = this.heartbeatTick++ % slots;
    for (let i = slot; i < this.hosts.length; i += slots) {
      const host = this.hosts[i] as FakeHost;
      if (host.welcomed) this.send(host, { heartbeat: { sentAtMs: Date.now() } });
    }
  }

  private onCommand(host: FakeHost, command: Command): void {
    const id = command.commandId;
    const kind = commandKindOf(command);
    host.received.push({ at: now(), kind: kind ?? "unknown", id });
    this.counters.commands[kind ?? "unknown"] = (this.counters.commands[kind ?? "unknown"] ?? 0) + 1;
    const final = host.finals.get(id);
    if (final) {
      this.counters.replays += 1;
      this.send(host, { commandStatus: { ...final, replayed: true } });
      return;
    }
    if (host.running.has(id)) {
      this.send(host, { commandStatus: bare(id, "running") });
      return;
    }
    host.running.add(id);
    this.send(host, { commandStatus: bare(id, "running") });
    const [min, max] = this.options.commandDelayMs;
    setTimeout(() => this.finish(host, id, command), min + Math.random() * (max - min));
  }

  private finish(host: FakeHost, id: string, command: Command): void {
    host.running.delete(id);
    const kind = commandKindOf(command);
    const outcome: FakeCommandOutcome = kind
      ? runFakeCommand(host, kind, command)
      : {
          status: bare(id, "succeeded"),
          changed: false,
          deployed: false,
          deployWithoutImage: false,
        };
    if (outcome.deployWithoutImage) this.counters.deploysWithoutImage += 1;
    host.finals.set(id, outcome.status);
    // As a real agent: the final status first, then the inventory that shows what changed.
    this.send(host, { commandStatus: outcome.status });
    if (outcome.changed) this.sendInventory(host);
    const at = now();
    if (kind === "pullImage") {
      host.pullReportedAt = at;
      this.pullsDone += 1;
    }
    if (outcome.deployed) {
      host.deployReportedAt = at;
      this.deploysDone += 1;
    }
  }
}
