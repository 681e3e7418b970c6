import { createHash, createPrivateKey, type KeyObject, sign } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { GildError, type Logger } from "@gild/core";
import { chunkSizeFor, DEFAULT_CHUNK_BYTES, decodeManifest, encodeManifest } from "@gild/protocol";
import type { ControllerImageStore } from "./services.js";
import type { ArtifactRecord } from "./store/artifacts-repo.js";
import type { Store } from "./store/store.js";

/** sha256 of each `chunkSize` piece of a stream fed to it in pieces of any size. */
class ChunkHasher {
  private current = createHash("sha256");
  private filled = 0;
  private readonly digests: Buffer[] = [];

  constructor(readonly chunkSize: number) {}

  update(data: Buffer): void {
    for (let at = 0; at < data.length; ) {
      const take = Math.min(this.chunkSize - this.filled, data.length - at);
      this.current.update(data.subarray(at, at + take));
      this.filled += take;
      at += take;
      if (this.filled === this.chunkSize) {
        this.digests.push(this.current.digest());
        this.current = createHash("sha256");
        this.filled = 0;
      }
    }
  }

  /** The digests, the last (shorter) chunk's included. */
  end(): Buffer[] {
    if (this.filled > 0) this.digests.push(this.current.digest());
    this.filled = 0;
    return this.digests;
  }
}

/** The chunk digests of a file already written, for a stream too long for the default chunk size. */
async function chunkDigestsOf(path: string, chunkSize: number): Promise<Buffer[]> {
  const hasher = new ChunkHasher(chunkSize);
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    hasher.update(piece as Buffer);
  }
  return hasher.end();
}

/**
 * How long an artifact whose file was found whole is trusted without looking again. A wave's pulls
 * come in several planning steps, and under a busy disk the look (the image's metadata, a stat of the
 * file, through libuv's thread pool) was seen to take 0.7 s at 10,000 hosts, holding up the next
 * wave's prefetch. A file lost or cut within this time is found by the host that downloads it: any
 * failed pull makes the next ensure look again (ImageService), and one that met damaged bytes checks
 * the file (verifyOrDiscard) and drops its record, so the next ensure makes it again.
 */
export const ARTIFACT_CHECK_FRESH_MS = 10_000;

/**
 * Send streams written once to files, each with its size, sha256, a sha256 per chunk and a signed
 * manifest. Every host that needs the same (version, parent, stream version) is served the same file,
 * so a transfer has a true total, resumes at a chunk, and is verified by the agent chunk by chunk
 * before any of it is applied.
 */
export class ArtifactService {
  private readonly building = new Map<string, Promise<ArtifactRecord>>();
  /** Checks of an artifact in progress, by line, version, parent and stream version (ensure). */
  private readonly checking = new Map<string, Promise<ArtifactRecord>>();
  /** Artifacts found whole lately, by the same key: their record, and when (ARTIFACT_CHECK_FRESH_MS). */
  private readonly checked = new Map<string, { record: ArtifactRecord; at: number }>();
  private readonly key: KeyObject;
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      store: Store;
      images: ControllerImageStore;
      dir: string;
      signingKeyPem: string;
      log: Logger;
      now?: () => number;
    },
  ) {
    this.key = createPrivateKey(deps.signingKeyPem);
    this.log = deps.log.child({ component: "artifacts" });
  }

  /** Look at every artifact's file again on its next ensure (a pull failed: its file may be damaged). */
  forgetChecks(): void {
    this.checked.clear();
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Where an artifact's bytes live. */
  filePath(id: string): string {
    return join(this.deps.dir, `${id}.stream`);
  }

  /**
   * The artifact for sending `version` (full when parent is null), made now if it does not exist.
   * Callers at the same time share one answer: a wave's pulls ask for the same artifact thousands of
   * times in one planning step, and each check reads the image's metadata and stats the file.
   */
  ensure(
    line: string,
    version: number,
    parent: number | null,
    streamVersion: 1 | 2,
  ): Promise<ArtifactRecord> {
    const key = `${line}@${version}:${parent ?? "-"}:${streamVersion}`;
    const checked = this.checked.get(key);
    // Without a read of the database either: on PostgreSQL each is a round trip, 0.25 s for a wave's
    // 900 pulls at 1,000 hosts. Whatever drops an artifact here forgets every check.
    if (checked !== undefined && this.now() - checked.at < ARTIFACT_CHECK_FRESH_MS)
      return Promise.resolve(checked.record);
    let answer = this.checking.get(key);
    if (answer === undefined) {
      const startedAt = this.now();
      answer = this.ensureNow(line, version, parent, streamVersion)
        .then((record) => {
          this.checked.set(key, { record, at: startedAt });
          return record;
        })
        .finally(() => this.checking.delete(key));
      this.checking.set(key, answer);
    }
    return answer;
  }

  private async ensureNow(
    line: string,
    version: number,
    parent: number | null,
    streamVersion: 1 | 2,
  ): Promise<ArtifactRecord> {
    const image = await this.deps.images.get(line, version);
    const parentImage = parent === null ? null : await this.deps.images.get(line, parent);
    const id = createHash("sha256")
      .update(`${image.uuid}:${parentImage?.uuid ?? "-"}:${streamVersion}`)
      .digest("hex")
      .slice(0, 32);
    const existing = this.deps.store.artifacts.byId(id);
    if (existing) {
      const size = await stat(this.filePath(id)).then(
        (s) => s.size,
        () => -1,
      );
      // An older controller's manifest has no chunk digests: agents could not pipeline it.
      const chunked = (decodeManifest(existing.manifest).chunkSize ?? 0) > 0;
      if (size === existing.sizeBytes && chunked) return existing;
      this.log.warn(
        { id, chunked },
        chunked
          ? "artifact file missing or truncated; making it again"
          : "artifact has no chunk digests; making it again",
      );
      this.deps.store.artifacts.delete(id);
    }
    const inFlight = this.building.get(id);
    if (inFlight) return inFlight;
    const build = this.build(
      id,
      line,
      version,
      parent,
      image.uuid,
      parentImage?.uuid ?? "",
      streamVersion,
    ).finally(() => this.building.delete(id));
    this.building.set(id, build);
    return build;
  }

  private async build(
    id: string,
    line: string,
    version: number,
    parent: number | null,
    uuid: string,
    parentUuid: string,
    streamVersion: 1 | 2,
  ): Promise<ArtifactRecord> {
    await mkdir(this.deps.dir, { recursive: true, mode: 0o700 });
    const path = this.filePath(id);
    const partial = `${path}.partial`;
    const hash = createHash("sha256");
    // The size is known only at the end: hash chunks at the default size as the stream goes, and
    // again from the file in the rare case the stream is too long for it (chunkSizeFor).
    const chunkHasher = new ChunkHasher(DEFAULT_CHUNK_BYTES);
    let size = 0;
    const started = Date.now();
    try {
      await pipeline(
        this.deps.images.sendStream(line, version, {
          ...(parent === null ? {} : { parent }),
          compressedData: streamVersion === 2,
        }),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            chunkHasher.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(partial, { mode: 0o600 }),
      );
      await rename(partial, path);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    const chunkSize = chunkSizeFor(size);
    const chunkSha256 =
      chunkSize === chunkHasher.chunkSize ? chunkHasher.end() : await chunkDigestsOf(path, chunkSize);
    const now = (this.deps.now ?? Date.now)();
    const sha256 = hash.digest("hex");
    const manifest = Buffer.from(
      encodeManifest({
        artifactId: id,
        line,
        version,
        parentVersion: parent ?? 0,
        parentUuid,
        uuid,
        sizeBytes: size,
        sha256,
        streamVersion,
        createdAtMs: now,
        chunkSize,
        chunkSha256,
      }),
    );
    const record: ArtifactRecord = {
      id,
      line,
      version,
      parentVersion: parent ?? 0,
      streamVersion,
      sizeBytes: size,
      sha256,
      manifest,
      signature: sign(null, manifest, this.key),
      createdAt: now,
    };
    this.deps.store.artifacts.insert(record);
    this.log.info(
      {
        id,
        image: `${line}@${version}`,
        parent,
        streamVersion,
        bytes: size,
        chunks: chunkSha256.length,
        ms: Date.now() - started,
      },
      "artifact written",
    );
    return record;
  }

  /**
   * After a host refused an artifact's bytes: check the file against its recorded sha256, and drop a
   * damaged one so the next push makes it again. Returns whether the file was intact.
   */
  async verifyOrDiscard(id: string): Promise<boolean> {
    const record = this.deps.store.artifacts.byId(id);
    if (!record) return false;
    const hash = createHash("sha256");
    try {
      for await (const chunk of createReadStream(this.filePath(id))) hash.update(chunk as Buffer);
    } catch {
      // A missing or unreadable file is as damaged as a changed one.
    }
    if (hash.digest("hex") === record.sha256) return true;
    this.log.error(
      { id, image: `${record.line}@${record.version}` },
      "artifact file is damaged; discarding it",
    );
    this.forgetChecks();
    await rm(this.filePath(id), { force: true });
    this.deps.store.artifacts.delete(id);
    return false;
  }

  byId(id: string): ArtifactRecord {
    const record = this.deps.store.artifacts.byId(id);
    if (!record) throw new GildError("GILD_ARTIFACT_NOT_FOUND", `no artifact ${id}`);
    return record;
  }

  /** Delete every artifact of a version (when the version is removed). */
  async removeForImage(line: string, version: number): Promise<void> {
    this.forgetChecks();
    for (const artifact of this.deps.store.artifacts.forImage(line, version)) {
      await rm(this.filePath(artifact.id), { force: true });
      this.deps.store.artifacts.delete(artifact.id);
    }
  }
}
