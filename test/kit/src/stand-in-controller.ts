import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import {
  type Command,
  type CommandStatus,
  type ControllerMessage,
  decodeAgentMessage,
  encodeControllerMessage,
  type Hello,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import { type WebSocket, WebSocketServer } from "ws";
import { freePort } from "./fleet/network.js";

/**
 * The controller's end of one agent's control socket, as a test drives it: plain ws on loopback (the
 * agent's dev mode), Welcome on Hello with the protocol version the test chooses, and exactly the
 * frames the test sends. For what a real controller never does on purpose (a command twice at once, an
 * older protocol).
 */
export class StandInController {
  readonly statuses: CommandStatus[] = [];
  hello: Hello | undefined;
  private socket: WebSocket | undefined;
  private seq = 0;
  private inventories = 0;

  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
    private readonly welcomeVersion: number,
  ) {
    wss.on("connection", (ws) => {
      this.socket = ws;
      ws.on("message", (data: Buffer) => this.onFrame(ws, data));
    });
  }

  /** Listen on a free loopback port; Welcome says `welcomeVersion` (default this build's). */
  static async start(options: { welcomeVersion?: number } = {}): Promise<StandInController> {
    const port = await freePort();
    const server = createServer();
    const wss = new WebSocketServer({ server, path: "/v1/agent" });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return new StandInController(wss, `http://127.0.0.1:${port}`, options.welcomeVersion ?? PROTOCOL_VERSION);
  }

  /** Connected, and the agent has reported its inventory (it is ready for commands). */
  get ready(): boolean {
    return this.socket !== undefined && this.inventories > 0;
  }

  private onFrame(ws: WebSocket, data: Buffer): void {
    const message = decodeAgentMessage(data, PROTOCOL_VERSION);
    if ("hello" in message) {
      this.hello = message.hello;
      this.send(ws, {
        welcome: {
          protocolVersion: this.welcomeVersion,
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

  /** Final statuses of a command id, replayed ones or first ones. */
  finals(id: string, replayed: boolean): CommandStatus[] {
    return this.statuses.filter(
      (s) =>
        s.commandId === id && (s.state === "succeeded" || s.state === "failed") && s.replayed === replayed,
    );
  }

  close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    return new Promise((resolve) => this.wss.options.server?.close(() => resolve()) ?? resolve());
  }
}

/**
 * Write a joined agent's state dir (identity, credential, the controller's signing key) pointing at
 * `controllerUrl` over plain http, as `gild agent join` would have: for an agent under a stand-in.
 */
export function writeJoinedState(stateDir: string, controllerUrl: string, name = "stand-in-host"): string {
  const hostId = `h_${randomBytes(8).toString("hex")}`;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(stateDir, "identity.json"),
    JSON.stringify({ hostId, name, labels: {}, controllerUrl, joinedAt: Date.now() }),
  );
  writeFileSync(join(stateDir, "credential"), `${hostId}.${randomBytes(32).toString("base64url")}\n`);
  const { publicKey } = generateKeyPairSync("ed25519");
  writeFileSync(join(stateDir, "controller-signing.pub"), publicKey.export({ type: "spki", format: "pem" }));
  return hostId;
}
