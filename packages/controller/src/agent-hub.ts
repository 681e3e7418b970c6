import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { GildError, type Logger, toGildError } from "@gild/core";
import {
  type AgentMessage,
  CloseCode,
  type CommandStatus,
  type ControllerMessage,
  checkProtocolVersion,
  decodeAgentMessage,
  encodeControllerMessage,
  type Hello,
  type Inventory,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import { type WebSocket, WebSocketServer } from "ws";
import type { Store } from "./store/store.js";
import { storeFailure } from "./store/store-errors.js";

/** What the hub tells the rest of the controller. */
export interface HubListener {
  onOnline?(hostId: string): void;
  onOffline?(hostId: string): void;
  onHello?(hostId: string, hello: Hello): void;
  onInventory?(hostId: string, inventory: Inventory): void;
  onCommandStatus?(hostId: string, status: CommandStatus): void;
}

interface Session {
  hostId: string;
  ws: WebSocket;
  seq: number;
  lastSeen: number;
  helloed: boolean;
  /** The protocol version the session speaks: the agent's, once its Hello said it. */
  version: number;
  awaitingPong: boolean;
  helloTimer: NodeJS.Timeout | undefined;
}

const HELLO_TIMEOUT_MS = 10_000;

/**
 * The control channel: one WebSocket per agent (/v1/agent), binary frames of one Envelope each, at most
 * 1 MiB, no compression. Authenticated before the upgrade (the router does it); here: Hello/Welcome
 * with the version check, liveness by ping/pong, and online/offline written only when it changes.
 */
export class AgentHub {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, Session>();
  private readonly listeners: HubListener[] = [];
  private readonly pingTimer: NodeJS.Timeout;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Hosts that went offline while the store could not record it: written on a later ping tick. */
  private readonly offlineUnrecorded = new Map<string, number>();
  private closing = false;
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      store: Store;
      log: Logger;
      heartbeatIntervalMs: number;
      controllerVersion: string;
      now?: () => number;
    },
  ) {
    this.log = deps.log.child({ component: "agent-hub" });
    // Text frames are refused by the protocol (1008) rather than validated as UTF-8 by ws (1007).
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      skipUTF8Validation: true,
    });
    this.pingTimer = setInterval(() => this.pingAll(), deps.heartbeatIntervalMs);
    this.pingTimer.unref();
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  addListener(listener: HubListener): void {
    this.listeners.push(listener);
  }

  /**
   * After a controller start, hosts the store remembers as online keep that state for `graceMs`, so a
   * restart does not flap the whole fleet offline; those that did not come back by then are offline.
   */
  startOfflineGrace(graceMs: number): void {
    this.graceTimer = setTimeout(() => {
      for (const host of this.deps.store.hosts.list()) {
        if (host.state === "online" && !this.sessions.has(host.id)) {
          this.recordOffline(host.id, host.lastSeen ?? this.now());
          this.log.info({ host: host.name }, "host did not reconnect within the grace period: offline");
          for (const l of this.listeners) l.onOffline?.(host.id);
        }
      }
    }, graceMs);
    this.graceTimer.unref();
  }

  /** Take over an upgrade request whose host credential the router already checked. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, hostId: string): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, hostId));
  }

  isOnline(hostId: string): boolean {
    return this.sessions.get(hostId)?.helloed === true;
  }

  lastSeen(hostId: string): number | undefined {
    return this.sessions.get(hostId)?.lastSeen;
  }

  /** Send one message to a connected, greeted agent, in its protocol version; false when it is not connected. */
  send(hostId: string, message: ControllerMessage): boolean {
    const session = this.sessions.get(hostId);
    if (!session?.helloed || session.ws.readyState !== session.ws.OPEN) return false;
    session.ws.send(encodeControllerMessage(message, session.version, ++session.seq));
    return true;
  }

  /** The protocol version a connected agent speaks, or undefined when it is not connected. */
  protocolVersion(hostId: string): number | undefined {
    const session = this.sessions.get(hostId);
    return session?.helloed ? session.version : undefined;
  }

  /** Close a host's socket now (revocation): a Refusal with the reason, then the close code. */
  disconnect(hostId: string, code: number, error: GildError): void {
    const session = this.sessions.get(hostId);
    if (!session) return;
    this.refuse(session, code, error);
    // A peer that does not complete the closing handshake is cut off shortly after.
    setTimeout(() => session.ws.terminate(), 500).unref();
  }

  close(): void {
    // Shutting down is not the agents going offline: the next start's grace period decides that.
    this.closing = true;
    clearInterval(this.pingTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    for (const session of this.sessions.values())
      session.ws.close(CloseCode.goingAway, "controller shutting down");
    this.wss.close();
  }

  private attach(ws: WebSocket, hostId: string): void {
    const previous = this.sessions.get(hostId);
    const session: Session = {
      hostId,
      ws,
      seq: 0,
      lastSeen: this.now(),
      helloed: false,
      version: PROTOCOL_VERSION,
      awaitingPong: false,
      helloTimer: undefined,
    };
    this.sessions.set(hostId, session);
    if (previous) {
      this.log.info({ hostId }, "a new connection replaces the previous one");
      previous.ws.close(CloseCode.replaced, "replaced by a newer connection");
    }
    session.helloTimer = setTimeout(() => {
      this.refuse(
        session,
        CloseCode.policyViolation,
        new GildError("GILD_PROTO_MALFORMED", "no Hello within 10 s"),
      );
    }, HELLO_TIMEOUT_MS);
    ws.on("message", (data, isBinary) => this.onMessage(session, data as Buffer, isBinary));
    ws.on("pong", () => {
      session.awaitingPong = false;
      session.lastSeen = this.now();
    });
    ws.on("error", (err: Error & { code?: string }) => {
      // ws closes with 1009 itself when a frame exceeds maxPayload.
      const code =
        err.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH" ? "GILD_PROTO_TOO_LARGE" : "GILD_PROTO_MALFORMED";
      this.log.warn({ hostId, code, err: err.message }, "agent connection error");
    });
    ws.on("close", (code, reason) => this.onClose(session, code, reason.toString()));
  }

  private onMessage(session: Session, data: Buffer, isBinary: boolean): void {
    session.lastSeen = this.now();
    let message: AgentMessage;
    try {
      if (!isBinary) throw new GildError("GILD_PROTO_MALFORMED", "text frames are not part of the protocol");
      // Until Hello, the agent's version is unknown: Hello is the same in every version.
      message = decodeAgentMessage(data, session.version);
    } catch (err) {
      const gild = toGildError(err);
      this.log.warn(
        { hostId: session.hostId, code: gild.code, err: gild.message },
        "bad frame from agent; closing",
      );
      this.refuse(
        session,
        gild.code === "GILD_PROTO_TOO_LARGE" ? CloseCode.tooLarge : CloseCode.policyViolation,
        gild,
      );
      return;
    }
    const kind = Object.keys(message)[0];
    if (!session.helloed && !("hello" in message)) {
      this.refuse(
        session,
        CloseCode.policyViolation,
        new GildError("GILD_PROTO_MALFORMED", `expected Hello, got ${kind}`),
      );
      return;
    }
    try {
      if ("hello" in message) this.onHello(session, message.hello);
      else if ("inventory" in message)
        for (const l of this.listeners) l.onInventory?.(session.hostId, message.inventory);
      else if ("commandStatus" in message)
        for (const l of this.listeners) l.onCommandStatus?.(session.hostId, message.commandStatus);
    } catch (err) {
      const unwritable = storeFailure(err);
      if (unwritable) {
        // What the agent said could not be recorded. Closing makes it reconnect later: then every
        // open command is sent again and the agent answers each from its journal, so nothing is lost.
        this.log.warn(
          { hostId: session.hostId, code: unwritable.code, payload: kind },
          "cannot record an agent's message; asking it to reconnect later",
        );
        this.refuse(session, CloseCode.tryAgainLater, unwritable);
        return;
      }
      // A listener's bug must not take the hub down; the agent's message is dropped and logged.
      this.log.error({ hostId: session.hostId, err }, "handling an agent message failed");
    }
  }

  private onHello(session: Session, hello: Hello): void {
    if (session.helloed) {
      this.refuse(
        session,
        CloseCode.policyViolation,
        new GildError("GILD_PROTO_MALFORMED", "second Hello on one connection"),
      );
      return;
    }
    try {
      checkProtocolVersion(hello.protocolVersion);
    } catch (err) {
      const gild = toGildError(err);
      this.log.warn(
        { hostId: session.hostId, version: hello.protocolVersion },
        "agent speaks an incompatible protocol",
      );
      this.refuse(session, CloseCode.protocolVersion, gild);
      return;
    }
    if (hello.hostId && hello.hostId !== session.hostId) {
      this.refuse(
        session,
        CloseCode.policyViolation,
        new GildError("GILD_FORBIDDEN", "Hello names another host than the credential"),
      );
      return;
    }
    clearTimeout(session.helloTimer);
    // Recorded before the Welcome: a controller that cannot write refuses the session (the caller
    // catches the store's error) instead of serving an agent whose reports it could not keep.
    const store = this.deps.store;
    store.transaction(() => {
      store.hosts.setHello(session.hostId, {
        agentVersion: hello.agentVersion,
        protocolVersion: hello.protocolVersion,
        kernelVersion: hello.kernelVersion,
        btrfsProgsVersion: hello.btrfsProgsVersion,
        maxStreamVersion: hello.maxStreamVersion || 1,
        facts: { ...hello.facts },
      });
      if (store.hosts.byId(session.hostId)?.state !== "online")
        store.hosts.setState(session.hostId, "online", this.now());
    });
    this.offlineUnrecorded.delete(session.hostId);
    session.helloed = true;
    // From here on, the session speaks the agent's version (this one, or the one before).
    session.version = hello.protocolVersion;
    const welcome: ControllerMessage = {
      welcome: {
        protocolVersion: PROTOCOL_VERSION,
        controllerVersion: this.deps.controllerVersion,
        heartbeatIntervalMs: this.deps.heartbeatIntervalMs,
        serverTimeMs: this.now(),
      },
    };
    session.ws.send(encodeControllerMessage(welcome, session.version, ++session.seq));
    this.log.info(
      {
        hostId: session.hostId,
        name: hello.hostName,
        agent: hello.agentVersion,
        protocol: hello.protocolVersion,
      },
      "agent connected",
    );
    for (const l of this.listeners) {
      l.onHello?.(session.hostId, hello);
      l.onOnline?.(session.hostId);
    }
  }

  private refuse(session: Session, code: number, error: GildError): void {
    clearTimeout(session.helloTimer);
    if (session.ws.readyState === session.ws.OPEN) {
      session.ws.send(
        encodeControllerMessage(
          { refusal: { code: error.code, message: error.message, hint: error.hint ?? "" } },
          session.version,
          ++session.seq,
        ),
      );
      session.ws.close(code, error.code);
    }
  }

  private onClose(session: Session, code: number, reason: string): void {
    clearTimeout(session.helloTimer);
    if (this.closing) return;
    if (this.sessions.get(session.hostId) !== session) return; // replaced: the new session owns the state
    this.sessions.delete(session.hostId);
    this.log.info({ hostId: session.hostId, code, reason }, "agent disconnected");
    if (!session.helloed) return;
    this.recordOffline(session.hostId, session.lastSeen);
    for (const l of this.listeners) l.onOffline?.(session.hostId);
  }

  /** Write a host's offline state; when the store cannot write, try again on the next ping tick. */
  private recordOffline(hostId: string, lastSeen: number): void {
    try {
      const host = this.deps.store.hosts.byId(hostId);
      if (host && host.state !== "offline") this.deps.store.hosts.setState(hostId, "offline", lastSeen);
      this.offlineUnrecorded.delete(hostId);
    } catch (err) {
      if (!storeFailure(err)) throw err;
      this.offlineUnrecorded.set(hostId, lastSeen);
    }
  }

  private pingAll(): void {
    for (const [hostId, lastSeen] of this.offlineUnrecorded) {
      if (!this.sessions.has(hostId)) this.recordOffline(hostId, lastSeen);
    }
    for (const session of this.sessions.values()) {
      if (session.awaitingPong) {
        this.log.warn({ hostId: session.hostId }, "agent missed a pong: terminating its connection");
        session.ws.terminate();
        continue;
      }
      session.awaitingPong = true;
      session.ws.ping();
    }
  }
}
