import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import {
  type Command,
  type CommandStatus,
  type ControllerMessage,
  decodeAgentMessage,
  encodeControllerMessage,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import {
  buildBusyboxRoot,
  busyboxServeCommand,
  createLoopBtrfs,
  freePort,
  gildCliPath,
  journalEntries,
  type LoopBtrfs,
  logTail,
  processAlive,
  run,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";

// The same command id delivered twice at the same moment, which a controller's re-send after a
// reconnect can do. A real agent (its own pool, real containers) against a stand-in controller that
// speaks the protocol and sends exactly the frames the test wants.

/** The controller's end of one agent's control socket, as a test drives it. */
class StandInController {
  readonly statuses: CommandStatus[] = [];
  private socket: WebSocket | undefined;
  private seq = 0;
  private inventories = 0;
  private readonly wss: WebSocketServer;

  constructor(readonly server: Server) {
    this.wss = new WebSocketServer({ server, path: "/v1/agent" });
    this.wss.on("connection", (ws) => {
      this.socket = ws;
      ws.on("message", (data: Buffer) => this.onFrame(ws, data));
    });
  }

  get ready(): boolean {
    return this.socket !== undefined && this.inventories > 0;
  }

  private onFrame(ws: WebSocket, data: Buffer): void {
    const message = decodeAgentMessage(data, PROTOCOL_VERSION);
    if ("hello" in message) {
      this.send(ws, {
        welcome: {
          protocolVersion: PROTOCOL_VERSION,
          controllerVersion: "stand-in",
          heartbeatIntervalMs: 20_000,
          serverTimeMs: Date.now(),
        },
      });
    } else if ("inventory" in message) {
      this.inventories++;
    } else if ("commandStatus" in message) {
      this.statuses.push(message.commandStatus);
    }
  }

  private send(ws: WebSocket, message: ControllerMessage): void {
    ws.send(encodeControllerMessage(message, PROTOCOL_VERSION, ++this.seq));
  }

  /** Send `command` `times` times in one go: the frames leave back to back, in one event-loop turn. */
  deliver(command: Command, times = 1): void {
    const ws = this.socket as WebSocket;
    for (let i = 0; i < times; i++) this.send(ws, { command });
  }

  finals(id: string, replayed: boolean): CommandStatus[] {
    return this.statuses.filter(
      (s) =>
        s.commandId === id &&
        (s.state === "succeeded" || s.state === "failed") &&
        Boolean(s.replayed) === replayed,
    );
  }

  close(): Promise<void> {
    this.wss.close();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describeWith(["root", "btrfs", "nspawn", "busybox"], "commands delivered twice", () => {
  let fs: LoopBtrfs;
  let controller: StandInController;
  let agent: ChildProcess | undefined;
  let pool: string;
  let stateDir: string;
  let logFile: string;
  const app = `dup-${randomBytes(3).toString("hex")}`;

  beforeAll(async () => {
    fs = await createLoopBtrfs({ sizeMiB: 512, label: "gild-dup-test" });
    pool = join(fs.mountPoint, "pool");
    stateDir = join(fs.dir, "state");
    logFile = join(fs.dir, "agent.log");
    // The image the command deploys, made on the agent's own pool.
    const tree = await buildBusyboxRoot(join(fs.dir, "tree"), { marker: "dup v1" });
    await run(process.execPath, [
      gildCliPath(),
      "image",
      "create",
      "web",
      "--from-dir",
      tree,
      "--pool",
      pool,
    ]);
    // A joined agent's state, pointing at the stand-in controller (plain ws: its dev mode).
    const port = await freePort();
    const server = createServer();
    controller = new StandInController(server);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    const hostId = `h_${randomBytes(8).toString("hex")}`;
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(stateDir, "identity.json"),
      JSON.stringify({
        hostId,
        name: "dup-host",
        labels: {},
        controllerUrl: `http://127.0.0.1:${port}`,
        joinedAt: Date.now(),
      }),
    );
    writeFileSync(join(stateDir, "credential"), `${hostId}.${randomBytes(32).toString("base64url")}\n`);
    const { publicKey } = generateKeyPairSync("ed25519");
    writeFileSync(
      join(stateDir, "controller-signing.pub"),
      publicKey.export({ type: "spki", format: "pem" }),
    );
    const log = openSync(logFile, "a");
    agent = spawn(
      process.execPath,
      [gildCliPath(), "agent", "run", "--state-dir", stateDir, "--pool", pool, "--runtime", "process"],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    await waitFor(() => controller.ready || (agent?.exitCode !== null && "exited"), {
      what: "the agent connected and reporting",
      timeoutMs: 60_000,
    }).then((v) => {
      if (v === "exited") throw new Error(`the agent exited: ${logTail(logFile)}`);
    });
  });

  afterAll(async () => {
    if (agent?.pid !== undefined && controller?.ready) {
      // Its containers outlive the agent: remove the app through the agent first.
      const id = "cleanup-remove";
      controller.deliver({ commandId: id, removeApp: { name: app, purgeData: true } });
      await waitFor(() => controller.finals(id, false).length > 0, {
        what: "the app removed",
        timeoutMs: 60_000,
      }).catch(() => undefined);
    }
    if (agent?.pid !== undefined && processAlive(agent.pid)) {
      const exited = new Promise((resolve) => agent?.once("exit", resolve));
      agent.kill("SIGTERM");
      await exited;
    }
    await controller?.close();
    await fs?.destroy();
  });

  it("h. the same command id twice at the same moment runs once: one result, one generation, one journal entry", async () => {
    const port = await freePort();
    const id = `dup-${randomBytes(4).toString("hex")}`;
    const command: Command = {
      commandId: id,
      deployApp: {
        spec: {
          name: app,
          imageLine: "web",
          command: busyboxServeCommand(port, "/srv/data"),
          env: {},
          dataMount: "/srv/data",
          health: {
            kind: "tcp",
            target: `127.0.0.1:${port}`,
            command: [],
            intervalMs: 200,
            timeoutMs: 1_000,
            initialDelayMs: 0,
            minHealthyMs: 500,
          },
          stopTimeoutMs: 5_000,
          port,
        },
        imageVersion: 1,
        healthyDeadlineMs: 30_000,
        specHash: "dup-test",
      },
    };
    controller.deliver(command, 2);
    await waitFor(() => controller.finals(id, false).length > 0, {
      what: "the deploy's result",
      timeoutMs: 90_000,
    });
    // Asked again later: the journaled answer, not a third run.
    controller.deliver(command);
    await waitFor(() => controller.finals(id, true).length > 0, {
      what: "the replayed result",
      timeoutMs: 30_000,
    });
    const finals = controller.finals(id, false);
    expect(finals.length).toBe(1);
    expect(finals[0]?.state, logTail(logFile)).toBe("succeeded");
    expect(finals[0]?.deploy?.generation).toBe(1);
    // One generation made, one container's worth of starts, one journal entry.
    const appDir = join(pool, "apps", app);
    expect(readdirSync(appDir).filter((n) => /^\d+$/.test(n))).toEqual(["1"]);
    expect(existsSync(join(appDir, "2"))).toBe(false);
    expect(journalEntries(stateDir).filter((e) => e.commandId === id)).toHaveLength(1);
  });
});
