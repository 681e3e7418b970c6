import { randomUUID } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import { mapLimit } from "@gild/testkit";
import type { Protocol, WorkspaceDeps, WsClient } from "./workspace-deps.js";

type AppInstance = Protocol.AppInstance;
type Command = Protocol.Command;
type CommandStatus = Protocol.CommandStatus;
type Envelope = Protocol.Envelope;
type ImageCopy = Protocol.ImageCopy;

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
  ws: WsClient | undefined;
  seq: number;
  welcomed: boolean;
  connects: number;
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
  commands: Record<string, number>;
  replays: number;
  unexpectedCloses: number;
  reconnects: number;
  errors: number;
  refusals: number;
  /** Deploys refused because the image was not on the host (the controller switched too early). */
  deploysWithoutImage: number;
  lastError: string;
}

const now = () => performance.timeOrigin + performance.now();
const GIB = 1024 ** 3;
const HEARTBEAT_TICK_MS = 100;

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
  private readonly secureContext: SecureContext;
  private readonly wsUrl: string;
  private heartbeatMs = 20_000;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatTick = 0;
  private stopping = false;

  constructor(
    private readonly deps: WorkspaceDeps,
    private readonly options: {
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
    },
  ) {
    this.secureContext = createSecureContext({ ca: options.caPem });
    this.wsUrl = `${options.controllerUrl.replace(/^https/, "wss")}/v1/agent`;
    const since = Date.now() - 86_400_000;
    this.hosts = options.joined.map((j, index) => ({
      ...j,
      index,
      ws: undefined,
      seq: 0,
      welcomed: false,
      connects: 0,
      images: [
        {
          line: options.line,
          version: options.startVersion,
          uuid: randomUUID(),
          receivedUuid: options.startUuid,
          parentUuid: "",
          sizeBytes: 300 * 1024 * 1024,
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
        previousGeneration: 0,
        previousImageVersion: 0,
        generations: [1],
        specHash: "",
      },
      finals: new Map(),
      running: new Set(),
      received: [],
      deployReportedAt: null,
      pullReportedAt: null,
    }));
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
    const { WebSocket, protocol } = this.deps;
    return new Promise((resolve, reject) => {
      host.welcomed = false;
      host.seq = 0;
      host.connects += 1;
      const ws = new WebSocket(this.wsUrl, {
        headers: { authorization: `Bearer ${host.credential}` },
        perMessageDeflate: false,
        maxPayload: protocol.MAX_FRAME_BYTES,
        handshakeTimeout: 60_000,
        secureContext: this.secureContext,
        checkServerIdentity: () => undefined,
      });
      host.ws = ws;
      let settled = false;
      ws.on("open", () => {
        this.send(host, {
          hello: {
            protocolVersion: protocol.PROTOCOL_VERSION,
            hostId: host.hostId,
            hostName: host.name,
            agentVersion: "bench-fake-agent",
            kernelVersion: "6.1.0-bench",
            btrfsProgsVersion: "6.2",
            labels: this.options.labels,
            facts: { arch: "x86_64", os: "bench", runtime: "fake" },
            maxStreamVersion: 2,
          },
        });
      });
      ws.on("message", (data, isBinary) => {
        if (!isBinary) return;
        let envelope: ReturnType<typeof protocol.decodeEnvelope>;
        try {
          envelope = protocol.decodeEnvelope(data);
        } catch (err) {
          this.counters.errors += 1;
          this.counters.lastError = `${host.name}: bad frame from the controller: ${(err as Error).message}`;
          return;
        }
        this.counters.framesIn += 1;
        this.lastActivityAt = now();
        if (envelope.payload === "welcome") {
          host.welcomed = true;
          this.heartbeatMs = envelope.welcome?.heartbeatIntervalMs || this.heartbeatMs;
          this.sendInventory(host);
          if (!settled) {
            settled = true;
            resolve();
          }
        } else if (envelope.payload === "command" && envelope.command) {
          this.onCommand(host, envelope.command);
        } else if (envelope.payload === "refusal") {
          this.counters.refusals += 1;
          this.counters.lastError = `refusal: ${envelope.refusal?.error?.code} ${envelope.refusal?.error?.message}`;
        }
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
        if (!settled) {
          settled = true;
          reject(new Error(`${host.name}: closed before Welcome (${code} ${reason.toString()})`));
          return;
        }
        if (this.stopping) return;
        this.counters.unexpectedCloses += 1;
        this.counters.lastError = `${host.name}: closed ${code} ${reason.toString()}`;
        // A real agent reconnects with backoff; the controller then re-sends its open commands.
        setTimeout(() => this.reconnect(host), 1_000 + Math.random() * 2_000);
      });
    });
  }

  private reconnect(host: FakeHost): void {
    if (this.stopping) return;
    this.counters.reconnects += 1;
    this.connect(host).catch(() => setTimeout(() => this.reconnect(host), 2_000 + Math.random() * 3_000));
  }

  private send(host: FakeHost, envelope: Envelope): void {
    const ws = host.ws;
    if (!ws || ws.readyState !== this.deps.WebSocket.OPEN) return;
    const bytes = this.deps.protocol.encodeEnvelope({ ...envelope, seq: ++host.seq });
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
    const id = command.commandId ?? "";
    const kind =
      (["pullImage", "removeImage", "deployApp", "rollbackApp", "removeApp", "readLogs"] as const).find(
        (k) => command[k] !== undefined && command[k] !== null,
      ) ?? "unknown";
    host.received.push({ at: now(), kind, id });
    this.counters.commands[kind] = (this.counters.commands[kind] ?? 0) + 1;
    const final = host.finals.get(id);
    if (final) {
      this.counters.replays += 1;
      this.send(host, { commandStatus: { ...final, replayed: true } });
      return;
    }
    const { CommandState } = this.deps.protocol;
    if (host.running.has(id)) {
      this.send(host, { commandStatus: { commandId: id, state: CommandState.STATE_RUNNING } });
      return;
    }
    host.running.add(id);
    this.send(host, { commandStatus: { commandId: id, state: CommandState.STATE_RUNNING } });
    const [min, max] = this.options.commandDelayMs;
    setTimeout(() => this.finish(host, id, kind, command), min + Math.random() * (max - min));
  }

  private finish(host: FakeHost, id: string, kind: string, command: Command): void {
    host.running.delete(id);
    const { CommandState, decodeManifest } = this.deps.protocol;
    let status: CommandStatus = { commandId: id, state: CommandState.STATE_SUCCEEDED };
    let changed = false;
    let deployed = false;
    if (kind === "pullImage" && command.pullImage?.manifest) {
      const manifest = decodeManifest(command.pullImage.manifest);
      const present = host.images.some((i) => i.receivedUuid === manifest.uuid);
      const parent = host.images.find((i) => i.receivedUuid === manifest.parentUuid);
      if (!present) {
        host.images = [
          ...host.images,
          {
            line: manifest.line ?? "",
            version: manifest.version ?? 0,
            uuid: randomUUID(),
            receivedUuid: manifest.uuid ?? "",
            parentUuid: parent?.uuid ?? "",
            sizeBytes: Number(manifest.sizeBytes ?? 0),
          },
        ];
        changed = true;
      }
      status = {
        ...status,
        pull: {
          uuid: host.images.at(-1)?.uuid ?? "",
          receivedUuid: manifest.uuid ?? "",
          bytesTransferred: present ? 0 : Number(manifest.sizeBytes ?? 0),
          alreadyPresent: present,
          resumedFrom: 0,
        },
      };
    } else if (kind === "deployApp" && command.deployApp) {
      const deploy = command.deployApp;
      const version = deploy.imageVersion ?? 0;
      const app = host.app;
      if (!host.images.some((i) => i.line === app.imageLine && i.version === version)) {
        this.counters.deploysWithoutImage += 1;
        status = {
          commandId: id,
          state: CommandState.STATE_FAILED,
          error: {
            code: "GILD_IMAGE_NOT_FOUND",
            message: `image ${app.imageLine}@${version} is not on this host`,
            hint: "",
          },
        };
      } else {
        const generation = Math.max(...(app.generations ?? [0])) + 1;
        const previous = app.generation ?? 0;
        host.app = {
          ...app,
          generation,
          imageVersion: version,
          state: "running",
          health: "healthy",
          healthDetail: "running (no probe)",
          healthSinceMs: Date.now(),
          previousGeneration: previous,
          previousImageVersion: app.imageVersion ?? 0,
          generations: [previous, generation],
          specHash: deploy.specHash ?? "",
        };
        status = {
          ...status,
          deploy: {
            name: app.name,
            generation,
            imageVersion: version,
            rolledBack: false,
            reason: "",
            previousGeneration: previous,
          },
        };
        changed = true;
        deployed = true;
      }
    } else if (kind === "rollbackApp") {
      const app = host.app;
      if (app.previousGeneration) {
        host.app = {
          ...app,
          generation: app.previousGeneration,
          imageVersion: app.previousImageVersion ?? 0,
          health: "healthy",
          healthSinceMs: Date.now(),
          previousGeneration: app.generation ?? 0,
          previousImageVersion: app.imageVersion ?? 0,
        };
        changed = true;
      }
      status = {
        ...status,
        deploy: {
          name: app.name,
          generation: host.app.generation ?? 0,
          imageVersion: host.app.imageVersion ?? 0,
          rolledBack: false,
          reason: "",
          previousGeneration: app.generation ?? 0,
        },
      };
    }
    host.finals.set(id, status);
    // As a real agent: the final status first, then the inventory that shows what changed.
    this.send(host, { commandStatus: status });
    if (changed) this.sendInventory(host);
    const at = now();
    if (kind === "pullImage") {
      host.pullReportedAt = at;
      this.pullsDone += 1;
    }
    if (deployed) {
      host.deployReportedAt = at;
      this.deploysDone += 1;
    }
  }
}
