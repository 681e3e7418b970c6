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
import { hurryOverdue } from "./end-of-turn.js";
import { assertValidInventory } from "./inventory-check.js";
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
  /** Which of the heartbeat interval's ping ticks pings this session (PING_SLICES). */
  pingSlot: number;
  helloTimer: NodeJS.Timeout | undefined;
  /** When the last inventory was handled, and the newest one waiting for its turn (coalesced). */
  inventoryAt: number;
  inventoryWaiting: Inventory | undefined;
  /** A command's final status came since the last inventory was handled: the next one is its answer. */
  answered: boolean;
  inventoryTimer: NodeJS.Timeout | undefined;
}

const HELLO_TIMEOUT_MS = 10_000;

/**
 * Each heartbeat interval pings every session once, a slice of them per tick, not all at once: at
 * 10,000 hosts one tick that pinged them all held the event loop for about 180 ms (a TLS write each),
 * and their pongs came back in one burst. Ticks are at least PING_TICK_MIN_MS apart, so a short
 * interval (tests) has fewer slices.
 */
const PING_SLICES = 20;
const PING_TICK_MIN_MS = 50;

/** Connections of one host that have not said Hello yet; more are refused (try again later). */
const MAX_PENDING_PER_HOST = 4;

/**
 * One host's inventories are handled at most this often; one that arrives sooner waits, and a newer
 * one replaces it (each inventory is the whole state, so only the newest matters).
 */
const INVENTORY_INTERVAL_MS = 1_000;

/** Closes that ws makes itself (no reason), and the refusal each stands for. */
const BARE_CLOSES: Record<number, () => GildError> = {
  [CloseCode.tooLarge]: () =>
    new GildError("GILD_PROTO_TOO_LARGE", `a frame or message over ${MAX_FRAME_BYTES} bytes`),
  [CloseCode.policyViolation]: () => new GildError("GILD_PROTO_MALFORMED", "a message in too many fragments"),
  1002: () => new GildError("GILD_PROTO_MALFORMED", "not a valid WebSocket frame"),
  1007: () => new GildError("GILD_PROTO_MALFORMED", "not a valid WebSocket frame"),
};

/**
 * The control channel: one WebSocket per agent (/v1/agent), binary frames of one Envelope each, at most
 * 1 MiB, no compression. Authenticated before the upgrade (the router does it); here: Hello/Welcome
 * with the version check, liveness by ping/pong, and online/offline written only when it changes.
 *
 * Online means: a session that completed Hello and answers pings. A new connection with a host's
 * credential waits beside the live session until it says Hello; only then does it replace it. One that
 * never does is closed by the hello timeout and changes nothing, so it cannot keep a gone agent online.
 */
export class AgentHub {
  private readonly wss: WebSocketServer;
  /** The live session of each host: it completed Hello. */
  private readonly sessions = new Map<string, Session>();
  /** Connections that have not said Hello yet, per host. */
  private readonly pending = new Map<string, Set<Session>>();
  private readonly listeners: HubListener[] = [];
  private readonly pingTimer: NodeJS.Timeout;
  private readonly pingSlices: number;
  /** Ticks of the ping timer so far: which slot the next tick pings. */
  private pingTicks = 0;
  /** Sessions made so far: the slot a new session gets goes round the slices. */
  private sessionsMade = 0;
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
    this.pingSlices = Math.max(
      1,
      Math.min(PING_SLICES, Math.floor(deps.heartbeatIntervalMs / PING_TICK_MIN_MS)),
    );
    this.pingTimer = setInterval(() => this.pingTick(), deps.heartbeatIntervalMs / this.pingSlices);
    this.pingTimer.unref();
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Sessions that said Hello: the agents connected now. */
  get sessionCount(): number {
    let n = 0;
    for (const session of this.sessions.values()) if (session.helloed) n++;
    return n;
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
    const live = this.sessions.get(hostId);
    for (const session of [...(live ? [live] : []), ...(this.pending.get(hostId) ?? [])]) {
      this.refuse(session, code, error);
      // A peer that does not complete the closing handshake is cut off shortly after.
      setTimeout(() => session.ws.terminate(), 500).unref();
    }
  }

  close(): void {
    // Shutting down is not the agents going offline: the next start's grace period decides that.
    this.closing = true;
    clearInterval(this.pingTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    for (const session of this.sessions.values()) {
      clearTimeout(session.inventoryTimer);
      session.ws.close(CloseCode.goingAway, "controller shutting down");
    }
    for (const waiting of this.pending.values())
      for (const session of waiting) session.ws.close(CloseCode.goingAway, "controller shutting down");
    this.wss.close();
  }

  private attach(ws: WebSocket, hostId: string): void {
    const session: Session = {
      hostId,
      ws,
      seq: 0,
      lastSeen: this.now(),
      helloed: false,
      version: PROTOCOL_VERSION,
      awaitingPong: false,
      pingSlot: this.sessionsMade++ % this.pingSlices,
      helloTimer: undefined,
      inventoryAt: 0,
      inventoryWaiting: undefined,
      answered: false,
      inventoryTimer: undefined,
    };
    this.refuseBareCloses(session);
    ws.on("error", (err: Error & { code?: string }) => {
      this.log.warn({ hostId, code: err.code, err: err.message }, "agent connection error");
    });
    ws.on("close", (code, reason) => this.onClose(session, code, reason.toString()));
    const waiting = this.pending.get(hostId) ?? new Set<Session>();
    if (waiting.size >= MAX_PENDING_PER_HOST) {
      this.log.warn({ hostId }, "too many connections of one host waiting for their Hello; refusing another");
      this.refuse(
        session,
        CloseCode.tryAgainLater,
        new GildError(
          "GILD_UNAVAILABLE",
          `${MAX_PENDING_PER_HOST} connections of this host are opening already`,
          {
            hint: "the agent reconnects by itself; several agents with one host's credential are not supported",
          },
        ),
      );
      return;
    }
    waiting.add(session);
    this.pending.set(hostId, waiting);
    session.helloTimer = setTimeout(() => {
      this.refuse(
        session,
        CloseCode.policyViolation,
        new GildError("GILD_PROTO_MALFORMED", `no Hello within ${HELLO_TIMEOUT_MS / 1000} s`),
      );
    }, HELLO_TIMEOUT_MS);
    ws.on("message", (data, isBinary) => this.onMessage(session, data as Buffer, isBinary));
    ws.on("pong", () => {
      session.awaitingPong = false;
      session.lastSeen = this.now();
    });
  }

  /**
   * ws closes by itself, with no reason and no word, when a frame is too large (1009), a message comes
   * in too many fragments (1008) or a frame is not WebSocket (1002): send the coded Refusal first, and
   * the code as the close reason, like every other close of the protocol.
   */
  private refuseBareCloses(session: Session): void {
    const ws = session.ws;
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) => {
      const refusal = code !== undefined && !reason ? BARE_CLOSES[code]?.() : undefined;
      if (!refusal) return close(code, reason);
      this.log.warn(
        { hostId: session.hostId, code: refusal.code, err: refusal.message },
        "bad frame from agent; closing",
      );
      if (ws.readyState === ws.OPEN) this.sendRefusal(session, refusal);
      return close(code, refusal.code);
    };
  }

  private onMessage(session: Session, data: Buffer, isBinary: boolean): void {
    session.lastSeen = this.now();
    // A flood of messages is a turn that does not end: what waits for its end runs once overdue.
    hurryOverdue();
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
      else if ("inventory" in message) this.onInventory(session, message.inventory);
      else if ("commandStatus" in message) {
        // What the agent reported before a command's result is known first: a waiting inventory is
        // handled before the status (a deploy's answer then finds the inventory it changed).
        this.flushInventory(session);
        const state = message.commandStatus.state;
        if (state === "succeeded" || state === "failed") session.answered = true;
        for (const l of this.listeners) l.onCommandStatus?.(session.hostId, message.commandStatus);
      }
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
    this.pending.get(session.hostId)?.delete(session);
    const previous = this.sessions.get(session.hostId);
    this.sessions.set(session.hostId, session);
    if (previous) {
      this.log.info({ hostId: session.hostId }, "a new session replaces the previous one");
      clearTimeout(previous.inventoryTimer);
      previous.ws.close(CloseCode.replaced, "replaced by a newer connection");
    }
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

  /**
   * An inventory is checked, then handled at most once per INVENTORY_INTERVAL_MS per host: a newer one
   * that comes sooner replaces the one waiting. A bad one closes the session with a coded Refusal.
   */
  private onInventory(session: Session, inventory: Inventory): void {
    try {
      assertValidInventory(inventory);
    } catch (err) {
      const gild = toGildError(err);
      this.log.warn({ hostId: session.hostId, err: gild.message }, "invalid inventory from agent; closing");
      this.refuse(session, CloseCode.policyViolation, gild);
      return;
    }
    // The inventory that follows a command's result shows what the command changed (a switched app,
    // healthy): a rollout's wave may wait for just that, so it is handled at once. Only as often as
    // commands finish: the interval still holds every other report back.
    if (session.answered) {
      session.answered = false;
      clearTimeout(session.inventoryTimer);
      session.inventoryTimer = undefined;
      session.inventoryWaiting = undefined;
      this.handleInventory(session, inventory);
      return;
    }
    const due = session.inventoryAt + INVENTORY_INTERVAL_MS - this.now();
    if (due <= 0 && session.inventoryTimer === undefined) {
      this.handleInventory(session, inventory);
      return;
    }
    session.inventoryWaiting = inventory;
    session.inventoryTimer ??= setTimeout(
      () => {
        session.inventoryTimer = undefined;
        const next = session.inventoryWaiting;
        session.inventoryWaiting = undefined;
        if (!next || this.sessions.get(session.hostId) !== session) return;
        try {
          this.handleInventory(session, next);
        } catch (err) {
          const unwritable = storeFailure(err);
          if (!unwritable) {
            this.log.error({ hostId: session.hostId, err }, "handling an agent's inventory failed");
            return;
          }
          this.log.warn(
            { hostId: session.hostId, code: unwritable.code },
            "cannot record an agent's inventory; asking it to reconnect later",
          );
          this.refuse(session, CloseCode.tryAgainLater, unwritable);
        }
      },
      Math.max(0, due),
    );
  }

  /** Handle the waiting inventory now, if there is one. */
  private flushInventory(session: Session): void {
    const waiting = session.inventoryWaiting;
    if (!waiting) return;
    clearTimeout(session.inventoryTimer);
    session.inventoryTimer = undefined;
    session.inventoryWaiting = undefined;
    this.handleInventory(session, waiting);
  }

  private handleInventory(session: Session, inventory: Inventory): void {
    session.inventoryAt = this.now();
    for (const l of this.listeners) l.onInventory?.(session.hostId, inventory);
  }

  private sendRefusal(session: Session, error: GildError): void {
    session.ws.send(
      encodeControllerMessage(
        { refusal: { code: error.code, message: error.message, hint: error.hint ?? "" } },
        session.version,
        ++session.seq,
      ),
    );
  }

  private refuse(session: Session, code: number, error: GildError): void {
    clearTimeout(session.helloTimer);
    if (session.ws.readyState === session.ws.OPEN) {
      this.sendRefusal(session, error);
      session.ws.close(code, error.code);
    }
  }

  private onClose(session: Session, code: number, reason: string): void {
    clearTimeout(session.helloTimer);
    clearTimeout(session.inventoryTimer);
    const waiting = this.pending.get(session.hostId);
    if (waiting?.delete(session) && waiting.size === 0) this.pending.delete(session.hostId);
    if (this.closing) return;
    // Only the end of the live session changes the host's state: a connection that never said Hello,
    // or one a newer session replaced, goes without a trace.
    if (this.sessions.get(session.hostId) !== session) return;
    this.sessions.delete(session.hostId);
    this.log.info({ hostId: session.hostId, code, reason }, "agent disconnected");
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

  /**
   * One tick of the heartbeat: ping the sessions of this tick's slot; one that has not answered the ping
   * of its slot's previous tick, one interval ago, is cut off. Once per interval, retry writing the
   * offline states the store could not write.
   */
  private pingTick(): void {
    const slot = this.pingTicks++ % this.pingSlices;
    if (slot === 0)
      for (const [hostId, lastSeen] of this.offlineUnrecorded) {
        if (!this.sessions.has(hostId)) this.recordOffline(hostId, lastSeen);
      }
    for (const session of this.sessions.values()) {
      if (session.pingSlot !== slot) continue;
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
