import type { Server, Socket } from "node:net";
import type { Logger } from "@gild/core";

// A refused connection is logged at most this often, with the count since the last line.
const LOG_EVERY_MS = 60_000;

/**
 * Bounds the connections that have not authenticated yet (docs/architecture.md, Security): each gets
 * `timeoutMs` for its TLS handshake and its first request, and at most `maxPending` may be open at
 * once; one more is closed as soon as it is accepted. A connection leaves the count when a request
 * on it authenticates (the admin token, a host credential on an upgrade), or when it closes.
 *
 * Connections are keyed by their remote address and port: the TCP socket the server accepts and the
 * TLS socket a request arrives on share them, and they are unique among open connections.
 */
export class ConnectionGate {
  private readonly pending = new Map<string, { socket: Socket; timer: NodeJS.Timeout | undefined }>();
  private refused = 0;
  private refusedUnlogged = 0;
  private lastLog = 0;

  constructor(
    server: Server,
    private readonly options: { maxPending: number; timeoutMs: number; log: Logger },
  ) {
    server.on("connection", (socket: Socket) => this.admit(socket));
  }

  /** Connections open and not authenticated yet. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Connections closed at once because too many were pending, since the start. */
  get refusedCount(): number {
    return this.refused;
  }

  /** A request arrived on the connection: its handshake is done, the first-request deadline is met. */
  requested(socket: Socket): void {
    const entry = this.pending.get(keyOf(socket));
    if (entry?.timer) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
  }

  /** A request on the connection authenticated: it no longer counts as pending. */
  authenticated(socket: Socket): void {
    const key = keyOf(socket);
    const entry = this.pending.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(key);
  }

  private admit(socket: Socket): void {
    if (this.pending.size >= this.options.maxPending) {
      this.refused++;
      this.refusedUnlogged++;
      socket.destroy();
      const now = Date.now();
      if (now - this.lastLog >= LOG_EVERY_MS) {
        this.lastLog = now;
        this.options.log.warn(
          { refused: this.refusedUnlogged, pending: this.pending.size, limit: this.options.maxPending },
          "too many connections not authenticated yet: closing new ones (maxPendingConnections)",
        );
        this.refusedUnlogged = 0;
      }
      return;
    }
    const key = keyOf(socket);
    const timer = setTimeout(() => {
      // Neither a TLS handshake nor a request in time: a connection that holds memory for nothing.
      socket.destroy();
    }, this.options.timeoutMs);
    timer.unref();
    const entry = { socket, timer };
    this.pending.set(key, entry);
    socket.once("close", () => {
      clearTimeout(entry.timer);
      if (this.pending.get(key) === entry) this.pending.delete(key);
    });
  }
}

function keyOf(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
