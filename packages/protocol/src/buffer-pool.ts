/**
 * Transfer buffers kept from one transfer to the next. Memory the process has not written yet costs
 * a page fault per 4 KiB on first write: on this project's test machines (virtual) about 15 ms per
 * fresh 4 MiB (the agent's chunk buffers, the controller's ring of read buffers). A buffer given back
 * is handed out again, already resident, instead. Kept only while transfers come: `idleMs` after the
 * last take or give the pool lets its buffers go, so an idle process holds none.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private heldBytes = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    /** The most it keeps (bytes); a buffer given back beyond it is left to the collector. */
    private readonly maxBytes: number,
    /** How long after the last take or give it keeps its buffers. */
    private readonly idleMs = 60_000,
  ) {}

  /** Bytes held for reuse now. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** A buffer of exactly `size` bytes, with whatever it held before (as Buffer.allocUnsafeSlow). */
  take(size: number): Buffer {
    this.touch();
    const buffer = this.free.get(size)?.pop();
    if (buffer === undefined) return Buffer.allocUnsafeSlow(size);
    this.heldBytes -= size;
    return buffer;
  }

  /** Give a buffer back: nothing may read or write it afterwards. */
  give(buffer: Buffer): void {
    this.touch();
    // Only whole buffers of their own memory: a view's allocation is larger than it says.
    if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) return;
    if (this.heldBytes + buffer.length > this.maxBytes) return;
    const list = this.free.get(buffer.length);
    if (list?.includes(buffer)) return;
    if (list) list.push(buffer);
    else this.free.set(buffer.length, [buffer]);
    this.heldBytes += buffer.length;
  }

  /** Let every held buffer go. */
  drain(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.free.clear();
    this.heldBytes = 0;
  }

  private touch(): void {
    // Re-armed, not replaced: a pull touches the pool per chunk.
    if (this.idleTimer) this.idleTimer.refresh();
    else {
      this.idleTimer = setTimeout(() => this.drain(), this.idleMs);
      this.idleTimer.unref();
    }
  }
}
