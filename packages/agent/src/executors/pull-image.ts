import { createHash, createPublicKey, type Hash, verify } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { type ExpectedStream, type ImageStore, receive } from "@gild/btrfs";
import { assertValidLine, GildError, isGildError, type Logger } from "@gild/core";
import { type ArtifactManifest, decodeManifest, type PullImage, type PullResult } from "@gild/protocol";
import { downloadArtifact, isRetryable } from "../artifact-download.js";
import { chunkLayoutOf } from "../chunk-assembler.js";
import { pullChunked } from "../chunked-pull.js";
import { controllerRangeReader, peerRangeReader } from "../peer/chunk-sources.js";
import type { Peering } from "../peer/peering.js";
import type { ProgressReporter } from "../progress.js";

export interface PullContext {
  store: ImageStore;
  controllerUrl: string;
  credential: string;
  caPem: string | null;
  signingPublicKeyPem: string;
  maxDownloadRate: number;
  log: Logger;
  progress: ProgressReporter;
  signal?: AbortSignal;
  /** Peer fan-out: holdings and this host's certificate; absent where peering is off (tests). */
  peering?: Peering;
}

const MAX_ATTEMPTS = 6;

// The spool file may hold this much unwritten before the socket pauses: enough for the network and the
// disk to work at the same time, and a bound on memory (measured: with the default 16 KiB, each write
// paused the socket and the transfer ran stop-and-go).
const SINK_BUFFER_BYTES = 8 * 1024 * 1024;

/** Check the manifest's ed25519 signature before anything else happens. */
export function verifyManifest(pull: PullImage, signingPublicKeyPem: string): ArtifactManifest {
  const manifest = pull.manifest ?? new Uint8Array();
  const signature = pull.signature ?? new Uint8Array();
  let ok = false;
  try {
    ok = verify(null, manifest, createPublicKey(signingPublicKeyPem), signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new GildError(
      "GILD_SIGNATURE_INVALID",
      "the artifact manifest's signature does not verify with the controller's key",
      {
        hint: "the manifest was altered, or signed by another controller; nothing was downloaded",
      },
    );
  }
  const decoded = decodeManifest(manifest);
  assertValidLine(decoded.line ?? "");
  if (
    !decoded.artifactId ||
    !/^[0-9a-f]{32}$/.test(decoded.artifactId) ||
    !(decoded.version && decoded.version > 0)
  ) {
    throw new GildError("GILD_SIGNATURE_INVALID", "the signed manifest is incomplete");
  }
  return decoded;
}

async function fileSize(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

/** Flush and close a write stream; one that failed (and so was destroyed) is done already. */
function finishWrite(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableFinished) return Promise.resolve();
  return new Promise((resolve, reject) => {
    stream.once("error", reject);
    stream.once("close", () => resolve());
    stream.end(() => resolve());
  });
}

async function hashOf(path: string, bytes: number): Promise<Hash> {
  const hash = createHash("sha256");
  if (bytes > 0) {
    for await (const chunk of createReadStream(path, { end: bytes - 1, highWaterMark: 1024 * 1024 })) {
      hash.update(chunk as Buffer);
    }
  }
  return hash;
}

/**
 * PullImage: verify the signed manifest, then download the artifact through .spool into `btrfs
 * receive`, with every check of the receive (docs/architecture.md, The wire) before the image is
 * promoted. With chunk digests in the manifest the two run at once, a chunk at a time, each checked
 * before receive sees it (chunked-pull.ts); without (an older controller), the whole download is
 * checked first. The spool is removed once the image is promoted.
 */
export async function pullImage(pull: PullImage, ctx: PullContext): Promise<PullResult> {
  const manifest = verifyManifest(pull, ctx.signingPublicKeyPem);
  const layout = chunkLayoutOf(manifest);
  const line = manifest.line as string;
  const version = manifest.version as number;
  const size = manifest.sizeBytes ?? 0;
  const store = ctx.store;
  if (await store.exists(line, version)) {
    const existing = await store.get(line, version);
    if (existing.receivedUuid === manifest.uuid) {
      return {
        uuid: existing.uuid,
        receivedUuid: existing.receivedUuid ?? "",
        alreadyPresent: true,
        bytesTransferred: 0,
        resumedFrom: 0,
      };
    }
    throw new GildError(
      "GILD_IMAGE_EXISTS",
      `${line}@${version} on this host is another image than the controller's`,
      {
        hint: `remove it (gild image rm ${line}@${version} --hosts <this host>) and push again`,
      },
    );
  }
  const parentUuid = (manifest.parentVersion ?? 0) > 0 ? (manifest.parentUuid ?? "") : null;
  if (parentUuid && !(await store.findByUuid(parentUuid))) {
    throw new GildError(
      "GILD_PARENT_MISSING",
      `the parent of this delta (${line}@${manifest.parentVersion}) is not on this host`,
      {
        hint: "the controller picks parents from the inventory; it will send a full stream once it sees the inventory",
      },
    );
  }
  const expected: ExpectedStream = {
    line,
    version,
    sha256: manifest.sha256 ?? "",
    sizeBytes: size,
    parentUuid,
    uuid: manifest.uuid ?? "",
    createdBy: "controller",
    parentVersion: (manifest.parentVersion ?? 0) > 0 ? (manifest.parentVersion as number) : null,
    ...(ctx.signal ? { cancelSignal: ctx.signal } : {}),
  };
  const spool = join(store.pool.paths.spool, `${manifest.artifactId}.part`);
  if (layout === null) return pullWhole(manifest, ctx, spool, expected);
  const artifactId = manifest.artifactId as string;
  const peerTls = ctx.peering?.tls() ?? null;
  const peers =
    ctx.peering && peerTls
      ? {
          holdings: ctx.peering.holdings,
          sources: (pull.peerSources ?? []).map((source) => ({
            id: source.hostId,
            read: peerRangeReader(source, artifactId, layout.chunkSize, peerTls),
          })),
          controller: {
            id: "controller",
            read: controllerRangeReader({
              controllerUrl: ctx.controllerUrl,
              credential: ctx.credential,
              caPem: ctx.caPem,
              artifactId,
              sizeBytes: size,
            }),
          },
        }
      : undefined;
  const pulled = await pullChunked({
    store,
    layout,
    artifactId: manifest.artifactId as string,
    spool,
    expected,
    download: {
      controllerUrl: ctx.controllerUrl,
      credential: ctx.credential,
      caPem: ctx.caPem,
      maxDownloadRate: ctx.maxDownloadRate,
    },
    maxAttempts: MAX_ATTEMPTS,
    log: ctx.log,
    progress: ctx.progress,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(peers ? { peers } : {}),
  });
  const report = pulled.peerReport;
  return {
    uuid: pulled.received.image.uuid,
    receivedUuid: pulled.received.image.receivedUuid ?? "",
    bytesTransferred: pulled.bytesTransferred,
    alreadyPresent: false,
    resumedFrom: pulled.resumedFrom,
    // Who served a bad chunk (never used again in this transfer), and how much came from peers.
    ...(report && report.badPeers.length > 0 ? { badPeers: report.badPeers } : {}),
    ...(report && report.bytesFromPeers > 0 ? { bytesFromPeers: report.bytesFromPeers } : {}),
  };
}

/**
 * The pull of a manifest without chunk digests: download the artifact into .spool (hashing it as it
 * arrives; after a cut or an agent restart, only the rest is fetched), check its size and sha256, and
 * only then let `btrfs receive -f` read it.
 */
async function pullWhole(
  manifest: ArtifactManifest,
  ctx: PullContext,
  spool: string,
  expected: ExpectedStream,
): Promise<PullResult> {
  const size = manifest.sizeBytes ?? 0;
  let offset = await fileSize(spool);
  if (offset > size) {
    await rm(spool, { force: true });
    offset = 0;
  }
  // What is already spooled was hashed before the cut; hash it again (from the page cache, mostly).
  const hash = await hashOf(spool, offset);
  const firstOffset = offset;
  // The offset the last download attempt started from: 0 when it ran in one go.
  let resumedFrom = offset;
  ctx.progress.update(offset, size, "download");
  for (let attempt = 1; offset < size; attempt++) {
    resumedFrom = offset;
    const spoolOut = createWriteStream(spool, {
      flags: offset === 0 ? "w" : "a",
      mode: 0o600,
      highWaterMark: SINK_BUFFER_BYTES,
    });
    try {
      await downloadArtifact({
        controllerUrl: ctx.controllerUrl,
        credential: ctx.credential,
        caPem: ctx.caPem,
        artifactId: manifest.artifactId as string,
        offset,
        size,
        sinks: [spoolOut],
        onChunk: (chunk) => hash.update(chunk),
        rateLimit: ctx.maxDownloadRate,
        onBytes: (n: number) => ctx.progress.update(n, size, "download"),
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
    } catch (err) {
      if (isGildError(err, "GILD_NO_SPACE")) {
        // Nothing to resume from: the spool is what filled the disk. Give its space back at once.
        await finishWrite(spoolOut).catch(() => undefined);
        await rm(spool, { force: true });
        throw err;
      }
      if (!isRetryable(err) || attempt >= MAX_ATTEMPTS) throw err;
      ctx.log.warn(
        { artifact: manifest.artifactId, offset, attempt, err: (err as Error).message },
        "transfer cut; resuming",
      );
      await delay(Math.min(30_000, 250 * 2 ** attempt));
    } finally {
      await finishWrite(spoolOut).catch(() => undefined);
    }
    offset = await fileSize(spool);
  }
  const sha256 = hash.digest("hex");
  if (sha256 !== manifest.sha256) {
    // A damaged spool is no base to resume from: start from zero next time.
    await rm(spool, { force: true });
    throw new GildError(
      "GILD_STREAM_HASH_MISMATCH",
      `the artifact's sha256 ${sha256} differs from the signed ${manifest.sha256}`,
      {
        hint: "the controller checks its artifact file when a host reports this; push again",
      },
    );
  }
  ctx.progress.update(size, size, "receive");
  try {
    const received = await receive(ctx.store, { file: spool, sha256 }, expected);
    return {
      uuid: received.image.uuid,
      receivedUuid: received.image.receivedUuid ?? "",
      bytesTransferred: size - firstOffset,
      alreadyPresent: false,
      resumedFrom,
    };
  } finally {
    // Verified and promoted, or refused by receive: either way the spooled bytes are done with.
    await rm(spool, { force: true });
  }
}
