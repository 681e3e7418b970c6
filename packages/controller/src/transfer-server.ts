import { open } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { GildError, type Logger } from "@gild/core";
import { BufferPool, CloseCode, encodeTransferHeader, MAX_FRAME_BYTES } from "@gild/protocol";
import { WebSocket, WebSocketServer } from "ws";
import type { ArtifactService } from "./artifact-service.js";
import type { ArtifactRecord } from "./store/artifacts-repo.js";

/**
 * Frames written to the socket but not yet flushed: one being written, and the next waiting. More
 * would be written together (a writev), which TLS first copies into one fresh allocation: above the
 * unit's mmap threshold, a page fault per 4 KiB and an munmap. With 8 MiB waiting that cost the
 * controller 3.4 s of CPU per GiB sent, against 1.4 s with frames written one by one.
 */
const MAX_FRAMES_IN_FLIGHT = 2;

/** Room before each read for the frame's header: 2 bytes, and 8 of length at most. */
const FRAME_HEAD_ROOM = 10;

/**
 * Write an unmasked, final binary WebSocket frame's header into the FRAME_HEAD_ROOM bytes before a
 * payload of `length` bytes at FRAME_HEAD_ROOM in `buffer` (the shortest length form, RFC 6455 5.2);
 * returns where the frame starts.
 */
export function frameHeaderBefore(buffer: Buffer, length: number): number {
  const size = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const start = FRAME_HEAD_ROOM - size;
  buffer[start] = 0x82;
  if (size === 2) buffer[start + 1] = length;
  else if (size === 4) {
    buffer[start + 1] = 126;
    buffer.writeUInt16BE(length, start + 2);
  } else {
    buffer[start + 1] = 127;
    buffer.writeBigUInt64BE(BigInt(length), start + 2);
  }
  return start;
}

/**
 * Read buffers handed from one transfer's ring to the next (BufferPool: fresh memory costs a page
 * fault per 4 KiB, and the controller's unit maps every buffer of 64 KiB and up afresh,
 * deploy/systemd/gild-controller.service). Two full rings.
 */
const frameBuffers = new BufferPool(2 * MAX_FRAMES_IN_FLIGHT * (MAX_FRAME_BYTES + FRAME_HEAD_ROOM));

/**
 * Payload bytes per frame. Unlimited: the largest the protocol allows (fewest writes and TLS calls).
 * Under a rate limit: about 1/32 s of it (a power of two, 16 KiB to 1 MiB), so the bytes go out in a
 * steady stream of small steps rather than a MiB and then a pause.
 */
export function frameBytesFor(rateLimitBytesPerSecond: number): number {
  if (rateLimitBytesPerSecond <= 0) return MAX_FRAME_BYTES;
  const step = 2 ** Math.floor(Math.log2(Math.max(1, rateLimitBytesPerSecond / 32)));
  return Math.max(16 * 1024, Math.min(MAX_FRAME_BYTES, step));
}

/**
 * One host's share of the transfer rate limit: every frame of any of the host's transfers takes the
 * next slot of one schedule, so together they keep to the limit, ahead of it by one frame at most.
 * A schedule that fell behind (a slow reader held its transfer back) starts again from now: what was
 * not sent then is not sent later in a burst.
 */
export class HostPacer {
  private next = 0;
  /** Transfers using this pacer; it is dropped with the last. */
  users = 0;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Milliseconds to wait before sending `bytes`. */
  reserve(bytes: number): number {
    const now = this.now();
    const start = Math.max(this.next, now);
    this.next = start + (bytes / this.bytesPerSecond) * 1000;
    return start - now;
  }
}

/**
 * Serves artifact bytes on their own WebSocket per transfer (/v1/artifacts/<id>?offset=N): a
 * TransferHeader frame, then raw frames of at most 1 MiB from the offset, then a normal close.
 * Backpressure: reading the file waits while frames are unflushed. Optional per-host rate limit,
 * shared by the host's transfers.
 */
export class TransferServer {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 4096,
    perMessageDeflate: false,
    clientTracking: true,
  });
  private readonly log: Logger;
  private readonly pacers = new Map<string, HostPacer>();

  constructor(
    private readonly deps: {
      artifacts: ArtifactService;
      log: Logger;
      rateLimitBytesPerSecond: number;
      /** Bytes written to a host's socket, by image line (the metrics). */
      onSent?: (line: string, bytes: number) => void;
    },
  ) {
    this.log = deps.log.child({ component: "transfers" });
  }

  /** Parse the request; throws a coded error to answer before the upgrade. */
  resolve(req: IncomingMessage): { artifact: ArtifactRecord; offset: number } {
    const url = new URL(req.url ?? "/", "http://controller");
    const id = url.pathname.slice("/v1/artifacts/".length);
    const artifact = this.deps.artifacts.byId(id);
    const offsetText = url.searchParams.get("offset") ?? "0";
    const offset = Number(offsetText);
    if (!/^[0-9]+$/.test(offsetText) || offset > artifact.sizeBytes) {
      throw new GildError(
        "GILD_BAD_REQUEST",
        `offset ${offsetText} is not within the artifact's ${artifact.sizeBytes} bytes`,
      );
    }
    return { artifact, offset };
  }

  handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    hostId: string,
    target: { artifact: ArtifactRecord; offset: number },
  ): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.serve(ws, socket, hostId, target.artifact, target.offset).catch((err: unknown) => {
        this.log.warn(
          { hostId, artifact: target.artifact.id, err: (err as Error).message },
          "transfer ended with an error",
        );
        ws.close(CloseCode.internalError, "transfer failed");
      });
    });
  }

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  private acquirePacer(hostId: string): HostPacer | undefined {
    const limit = this.deps.rateLimitBytesPerSecond;
    if (limit <= 0) return undefined;
    let pacer = this.pacers.get(hostId);
    if (!pacer) {
      pacer = new HostPacer(limit);
      this.pacers.set(hostId, pacer);
    }
    pacer.users++;
    return pacer;
  }

  private releasePacer(hostId: string, pacer: HostPacer | undefined): void {
    if (pacer && --pacer.users === 0) this.pacers.delete(hostId);
  }

  private async serve(
    ws: WebSocket,
    socket: Duplex,
    hostId: string,
    artifact: ArtifactRecord,
    offset: number,
  ): Promise<void> {
    const started = Date.now();
    ws.send(encodeTransferHeader({ artifactId: artifact.id, offset, sizeBytes: artifact.sizeBytes }));
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const flushed = () => {
      inFlight--;
      wake?.();
    };
    let closed = false;
    ws.on("close", () => {
      closed = true;
      wake?.();
    });
    const frameBytes = frameBytesFor(this.deps.rateLimitBytesPerSecond);
    let sent = 0;
    // A ring of read buffers, reused once their frame is flushed (flushes complete in order): a
    // transfer holds at most MAX_FRAMES_IN_FLIGHT frames whatever its size and however slow its
    // reader, and makes no garbage. A fresh buffer per read left each fast transfer ~30 MiB of dead
    // buffers (measured) until V8's external-memory heuristics collected them.
    const ring: Buffer[] = [];
    const pacer = this.acquirePacer(hostId);
    const file = await open(this.deps.artifacts.filePath(artifact.id), "r");
    try {
      for (let position = offset, frame = 0; position < artifact.sizeBytes && !closed; frame++) {
        while (inFlight >= MAX_FRAMES_IN_FLIGHT && !closed) await new Promise<void>((r) => (wake = r));
        if (closed) break;
        const length = Math.min(frameBytes, artifact.sizeBytes - position);
        if (pacer) {
          const wait = pacer.reserve(length);
          if (wait > 0) await delay(wait);
          if (closed) break;
        }
        const slot = frame % MAX_FRAMES_IN_FLIGHT;
        ring[slot] ??= frameBuffers.take(frameBytes + FRAME_HEAD_ROOM);
        const buffer = ring[slot];
        const { bytesRead } = await file.read(buffer, FRAME_HEAD_ROOM, length, position);
        if (bytesRead === 0)
          throw new GildError("GILD_INTERNAL", `artifact ${artifact.id} ends before its recorded size`);
        // The peer may have begun a close while the read ran: nothing more may follow its close frame.
        if (closed || ws.readyState !== WebSocket.OPEN) break;
        position += bytesRead;
        inFlight++;
        // Header and payload in one buffer, one write: ws would cork the two into a writev (see
        // MAX_FRAMES_IN_FLIGHT). Its own frames (the header above, pongs, the close) are whole writes
        // to the same socket, so frames never interleave.
        const start = frameHeaderBefore(buffer, bytesRead);
        socket.write(buffer.subarray(start, FRAME_HEAD_ROOM + bytesRead), () => flushed());
        sent += bytesRead;
      }
    } finally {
      this.releasePacer(hostId, pacer);
      await file.close();
    }
    while (inFlight > 0 && !closed) await new Promise<void>((r) => (wake = r));
    // Every frame flushed: no write reads the ring any more. A transfer cut with frames in the
    // socket's queue leaves its ring to the collector.
    if (inFlight === 0) for (const buffer of ring) frameBuffers.give(buffer);
    if (!closed) ws.close(CloseCode.normal, "complete");
    this.deps.onSent?.(artifact.line, sent);
    this.log.info(
      { hostId, artifact: artifact.id, offset, bytes: sent, complete: !closed, ms: Date.now() - started },
      closed ? "transfer cut by the peer" : "transfer sent",
    );
  }
}
