import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@gild/core";
import { chunkCount } from "@gild/protocol";

/** The chunk layout of one artifact, from its signed manifest. */
/** Which artifact, and how its stream is cut (the digests stay with the fetcher). */
export interface HeldLayout {
  artifactId: string;
  sizeBytes: number;
  chunkSize: number;
}

/** How many chunks the artifact has (0 for a manifest without chunks). */
export function heldChunks(layout: HeldLayout): number {
  return layout.chunkSize > 0 ? chunkCount(layout.sizeBytes, layout.chunkSize) : 0;
}

/** What a peer server may serve of one artifact: a file whose first `verified` chunks were checked. */
export interface Holding extends HeldLayout {
  path: string;
  /** Chunks [0, verified) are in the file and matched the manifest. */
  verified: number;
  /** Still downloading: more chunks may come. False once complete, or abandoned. */
  growing: boolean;
  /** When its download last got a byte (or word from its own source that bytes are coming), ms. */
  movedAt: number;
}

interface Entry {
  holding: Holding;
  waiters: Set<() => void>;
  /** For the peer cache: when it was kept, and its bytes. */
  keptAt?: number;
}

/** The peer cache's bounds: artifacts kept after a receive, for a short while, for other hosts. */
export const PEER_CACHE_MAX_BYTES = 1024 * 1024 * 1024;
export const PEER_CACHE_TTL_MS = 30 * 60_000;

/**
 * The artifacts this host can serve to peers (docs/architecture.md, Peer fan-out): a download's spool
 * while it grows (only chunks already verified), then, after a successful receive, a copy kept in the
 * peer cache (`<pool>/.peer-cache/`, only while the peer server listens) for at most PEER_CACHE_TTL_MS and PEER_CACHE_MAX_BYTES in all,
 * oldest dropped first. Nothing survives a restart: the cache directory is emptied at start.
 */
export class PeerHoldings {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** True while the peer server listens: only then is a received artifact worth keeping for others. */
  serving = false;

  constructor(
    private readonly deps: {
      cacheDir: string;
      log: Logger;
      now?: () => number;
      maxCacheBytes?: number;
      cacheTtlMs?: number;
    },
  ) {
    this.log = deps.log.child({ component: "peer-holdings" });
  }

  /** Empty the cache directory (what an earlier agent kept is not known to be verified). */
  async open(): Promise<void> {
    await rm(this.deps.cacheDir, { recursive: true, force: true });
    this.sweepTimer = setInterval(() => void this.sweep(), 60_000);
    this.sweepTimer.unref();
  }

  close(): void {
    clearInterval(this.sweepTimer);
    for (const entry of this.entries.values()) this.wake(entry);
  }

  /** A download began (or resumed) into `path`, whose first `verified` chunks are checked. */
  downloading(layout: HeldLayout, path: string, verified: number): void {
    const entry = this.entries.get(layout.artifactId);
    if (entry?.keptAt !== undefined) return; // the cache holds it whole already
    this.entries.set(layout.artifactId, {
      holding: { ...layout, path, verified, growing: true, movedAt: this.now() },
      waiters: entry?.waiters ?? new Set(),
    });
  }

  /** Chunks [0, verified) of a download are now in its file and checked. */
  verified(artifactId: string, verified: number): void {
    const entry = this.entries.get(artifactId);
    if (!entry || verified <= entry.holding.verified) return;
    entry.holding.verified = Math.min(verified, heldChunks(entry.holding));
    entry.holding.movedAt = this.now();
    this.wake(entry);
  }

  /**
   * The download got bytes, or its own source said bytes are coming: its peer server tells the hosts
   * waiting on it to keep waiting (peer-server.ts, heartbeats).
   */
  moving(artifactId: string): void {
    const entry = this.entries.get(artifactId);
    if (entry?.holding.growing) entry.holding.movedAt = this.now();
  }

  /** The download stopped without completing (the file may go): serve nothing more of it. */
  abandoned(artifactId: string): void {
    const entry = this.entries.get(artifactId);
    if (!entry || entry.keptAt !== undefined) return;
    this.entries.delete(artifactId);
    entry.holding.growing = false;
    this.wake(entry);
  }

  /**
   * The download completed and was received: move its file into the peer cache (same filesystem, a
   * rename), or delete it when it is larger than the cache or no peer server listens. Call instead of removing the spool file.
   */
  async keep(artifactId: string, spoolPath: string): Promise<void> {
    const entry = this.entries.get(artifactId);
    const max = this.deps.maxCacheBytes ?? PEER_CACHE_MAX_BYTES;
    if (
      !this.serving ||
      !entry ||
      entry.holding.verified < heldChunks(entry.holding) ||
      entry.holding.sizeBytes > max
    ) {
      this.abandoned(artifactId);
      await rm(spoolPath, { force: true });
      return;
    }
    await mkdir(this.deps.cacheDir, { recursive: true, mode: 0o700 });
    const cached = join(this.deps.cacheDir, `${artifactId}.stream`);
    await rename(spoolPath, cached);
    entry.holding.path = cached;
    entry.holding.growing = false;
    entry.keptAt = this.now();
    this.wake(entry);
    await this.sweep();
  }

  /** Whether a download of the artifact is under way and got bytes within the last `withinMs`. */
  isMoving(artifactId: string, withinMs: number): boolean {
    const holding = this.entries.get(artifactId)?.holding;
    return holding?.growing === true && this.now() - holding.movedAt < withinMs;
  }

  /** What this host holds of an artifact, or undefined. */
  get(artifactId: string): Holding | undefined {
    return this.entries.get(artifactId)?.holding;
  }

  /**
   * Wait until chunk `index` is verified: true then, false when it never will be (abandoned), or the
   * signal aborted. A holding that stops growing without it resolves false.
   */
  async waitFor(artifactId: string, index: number, signal: AbortSignal): Promise<boolean> {
    for (;;) {
      const entry = this.entries.get(artifactId);
      if (!entry) return false;
      if (index < entry.holding.verified) return true;
      if (!entry.holding.growing || signal.aborted) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          entry.waiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        entry.waiters.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  private wake(entry: Entry): void {
    for (const w of [...entry.waiters]) w();
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Drop cached artifacts past their time, then the oldest until the cache fits its bound. */
  async sweep(): Promise<void> {
    const ttl = this.deps.cacheTtlMs ?? PEER_CACHE_TTL_MS;
    const max = this.deps.maxCacheBytes ?? PEER_CACHE_MAX_BYTES;
    const cached = [...this.entries.entries()]
      .filter(([, e]) => e.keptAt !== undefined)
      .sort(([, a], [, b]) => (b.keptAt as number) - (a.keptAt as number));
    let total = 0;
    for (const [id, entry] of cached) {
      total += entry.holding.sizeBytes;
      if (total <= max && this.now() - (entry.keptAt as number) < ttl) continue;
      this.entries.delete(id);
      total -= entry.holding.sizeBytes;
      await rm(entry.holding.path, { force: true });
      this.log.debug({ artifact: id }, "dropped from the peer cache");
    }
  }

  /** Bytes the cache holds on disk (for tests and the inventory of what is served). */
  async cachedBytes(): Promise<number> {
    let total = 0;
    for (const entry of this.entries.values()) {
      if (entry.keptAt === undefined) continue;
      total += await stat(entry.holding.path).then(
        (s) => s.size,
        () => 0,
      );
    }
    return total;
  }
}
