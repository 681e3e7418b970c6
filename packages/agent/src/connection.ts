import type { IncomingMessage } from "node:http";
import { errorFromResponse, tlsOptions } from "@gild/api-client";
import { GildError, gildErrorFrom, type Logger } from "@gild/core";
import {
  type AgentMessage,
  CloseCode,
  type ControllerMessage,
  decodeControllerMessage,
  encodeAgentMessage,
  type Hello,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import WebSocket from "ws";

export interface ConnectionOptions {
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  log: Logger;
  hello: () => Hello;
  /** After Welcome: the link is usable. */
  onConnected: () => void;
  /** A command from the controller (Welcome and Refusal are handled here). */
  onMessage: (message: ControllerMessage) => void;
  /** A refusal the agent cannot fix by retrying (revoked credential, incompatible protocol). */
  onFatal: (error: GildError) => void;
  silenceTimeoutMs: number;
  reconnectBaseMs?: number;
  reconnectMaxMs: number;
}

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30)));
}

const FATAL_CODES = new Set(["GILD_CREDENTIAL_INVALID", "GILD_PROTO_VERSION"]);
// Beyond this (and the link's delay), a clock difference is worth an operator's look.
const CLOCK_SKEW_WARN_MS = 60_000;

/**
 * The agent's end of the control channel: connects, says Hello, and keeps the link alive. It closes
 * after `silenceTimeoutMs` without any frame or ping, and reconnects with full-jitter backoff capped at
 * reconnectMaxMs, until stopped or refused for good.
 */
export class ControlConnection {
  private ws: WebSocket | undefined;
  private attempt = 0;
  private seq = 0;
  private stopped = false;
  private welcomed = false;
  private silenceTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ConnectionOptions) {
    this.log = options.log.child({ component: "connection" });
  }

  get connected(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.silenceTimer);
    clearInterval(this.heartbeatTimer);
    this.ws?.close(CloseCode.goingAway, "agent stopping");
    this.ws = undefined;
  }

  /** Send one message; false when the link is down (callers rely on re-sends after reconnect). */
  send(message: AgentMessage): boolean {
    if (!this.connected || !this.ws) return false;
    this.ws.send(encodeAgentMessage(message, PROTOCOL_VERSION, ++this.seq));
    return true;
  }

  private wsUrl(): string {
    return `${this.options.controllerUrl.replace(/^http/, "ws")}/v1/agent`;
  }

  private connect(): void {
    if (this.stopped) return;
    this.welcomed = false;
    this.seq = 0;
    const ws = new WebSocket(this.wsUrl(), {
      headers: { authorization: `Bearer ${this.options.credential}` },
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      ...tlsOptions({ caPem: this.options.caPem }),
    });
    this.ws = ws;
    this.armSilence();
    ws.on("open", () => {
      this.armSilence();
      ws.send(encodeAgentMessage({ hello: this.options.hello() }, PROTOCOL_VERSION, ++this.seq));
    });
    ws.on("message", (data, isBinary) => {
      this.armSilence();
      if (!isBinary) return;
      let message: ControllerMessage;
      try {
        message = decodeControllerMessage(data as Buffer, PROTOCOL_VERSION);
      } catch (err) {
        this.log.warn(
          { code: (err as GildError).code, err: (err as Error).message },
          "bad frame from the controller; reconnecting",
        );
        ws.terminate();
        return;
      }
      this.onControllerMessage(message);
    });
    ws.on("ping", () => this.armSilence());
    ws.on("unexpected-response", (_req, res: IncomingMessage) => this.onRejected(ws, res));
    ws.on("error", (err) => {
      this.log.warn({ err: err.message, url: this.wsUrl() }, "control connection error");
    });
    ws.on("close", (code, reason) => {
      if (this.ws !== ws) return;
      clearTimeout(this.silenceTimer);
      clearInterval(this.heartbeatTimer);
      this.welcomed = false;
      if (code === CloseCode.revoked) {
        this.fatal(new GildError("GILD_CREDENTIAL_INVALID", "the controller revoked this host's credential"));
        return;
      }
      if (code === CloseCode.protocolVersion) {
        this.fatal(
          new GildError(
            "GILD_PROTO_VERSION",
            `the controller refused this agent's protocol version (${reason.toString()})`,
          ),
        );
        return;
      }
      this.log.info({ code, reason: reason.toString() }, "control connection closed");
      this.scheduleReconnect();
    });
  }

  private onControllerMessage(message: ControllerMessage): void {
    if ("welcome" in message) {
      const welcome = message.welcome;
      // An agent never works under a controller older than itself: it could not be told all it needs.
      if (welcome.protocolVersion < PROTOCOL_VERSION) {
        this.fatal(
          new GildError(
            "GILD_PROTO_VERSION",
            `the controller speaks protocol ${welcome.protocolVersion}, older than this agent's ${PROTOCOL_VERSION}`,
            { hint: "upgrade the controller first, then its agents (docs/deployment.md, Upgrades)" },
          ),
        );
        return;
      }
      this.welcomed = true;
      this.attempt = 0;
      this.startHeartbeats(welcome.heartbeatIntervalMs || 20_000);
      this.log.info({ controller: welcome.controllerVersion }, "connected to the controller");
      this.checkClock(welcome.serverTimeMs);
      this.options.onConnected();
      return;
    }
    if ("refusal" in message) {
      const err = message.refusal;
      const gild = gildErrorFrom({
        code: err.code || "GILD_INTERNAL",
        message: err.message || "refused",
        ...(err.hint ? { hint: err.hint } : {}),
      });
      this.log.error({ code: gild.code, err: gild.message }, "the controller refused this agent");
      if (FATAL_CODES.has(gild.code)) this.fatal(gild);
      return;
    }
    this.options.onMessage(message);
  }

  /**
   * Say so when this host's clock is far from the controller's. gild never compares the two (health
   * streaks travel as durations), but logs, certificates and operators do.
   */
  private checkClock(serverTimeMs: number): void {
    if (serverTimeMs <= 0) return;
    const skewMs = Date.now() - serverTimeMs;
    if (Math.abs(skewMs) < CLOCK_SKEW_WARN_MS) return;
    this.log.warn(
      { skewMs },
      `this host's clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? "ahead of" : "behind"} the controller's; check NTP on both`,
    );
  }

  private onRejected(ws: WebSocket, res: IncomingMessage): void {
    const fallback = new GildError("GILD_UNAVAILABLE", `upgrade refused with ${res.statusCode}`);
    void errorFromResponse(res, fallback).then((error) => {
      this.log.error(
        { code: error.code, status: res.statusCode, err: error.message },
        "the controller refused the connection",
      );
      if (FATAL_CODES.has(error.code)) this.fatal(error);
      // Aborting the handshake closes the socket; its close handler schedules the reconnect.
      else ws.terminate();
    });
  }

  private fatal(error: GildError): void {
    if (this.stopped) return;
    this.stop();
    this.options.onFatal(error);
  }

  private armSilence(): void {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.log.warn({ silentMs: this.options.silenceTimeoutMs }, "the controller went silent; reconnecting");
      this.ws?.terminate();
    }, this.options.silenceTimeoutMs);
  }

  private startHeartbeats(intervalMs: number): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.send({ heartbeat: { sentAtMs: Date.now() } }), intervalMs);
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    const delay = backoffDelay(
      this.attempt++,
      this.options.reconnectBaseMs ?? 500,
      this.options.reconnectMaxMs,
    );
    this.log.info({ delayMs: delay, attempt: this.attempt }, "reconnecting");
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
