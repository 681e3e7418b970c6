import { createPublicKey, verify } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { type ImageStore, receive } from "@gild/btrfs";
import { assertValidLine, GildError, type Logger } from "@gild/core";
import { type ArtifactManifest, decodeManifest, type PullImage, type PullResult } from "@gild/protocol";
import { downloadArtifact, isRetryable } from "../artifact-download.js";
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
}

const MAX_ATTEMPTS = 6;

// Each sink (the spool file, btrfs receive) may hold this much before the socket pauses: enough for
// the network, the disk and receive to work at the same time, and a bound on memory (measured: with
// the default 16 KiB a file write paused the socket after every frame, and the transfer ran stop-and-go
// at a third of the raw pipe's speed).
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

function finishWrite(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once("error", reject);
    stream.end(() => resolve());
  });
}

/**
 * PullImage: verify the signed manifest, download the artifact into .spool (resuming at the spooled
 * offset after a cut or a restart), receive it with every check (stream sha256 and size against the
 * manifest), promote, and drop the spool file. A fresh transfer streams into `btrfs receive` while it
 * downloads; a resumed one receives from the spool once it is whole.
 */
export async function pullImage(pull: PullImage, ctx: PullContext): Promise<PullResult> {
  const manifest = verifyManifest(pull, ctx.signingPublicKeyPem);
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
      };
    }
    throw new GildError(
      "GILD_IMAGE_EXISTS",
      `${line}@${version} on this host is another image than the controller's`,
      {
        hint: `remove it (gild image rm ${line}@${version} on the host's pool) and push again`,
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
  const expected = {
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
  let offset = await fileSize(spool);
  if (offset > size) {
    await rm(spool, { force: true });
    offset = 0;
  }
  // Where a download last started again from the spool (0 when it ran in one go).
  let resumedFrom = offset;
  const download = {
    controllerUrl: ctx.controllerUrl,
    credential: ctx.credential,
    caPem: ctx.caPem,
    artifactId: manifest.artifactId as string,
    size,
    rateLimit: ctx.maxDownloadRate,
    onBytes: (n: number) => ctx.progress.update(n, size, "download"),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  };
  ctx.progress.update(offset, size, "download");
  let fetchedBytes = 0;

  if (offset === 0) {
    // Fresh: one pass, spooled (for resume) and received at once.
    const spoolOut = createWriteStream(spool, { flags: "w", mode: 0o600, highWaterMark: SINK_BUFFER_BYTES });
    const toReceive = new PassThrough({ highWaterMark: SINK_BUFFER_BYTES });
    const receiving = receive(store, toReceive, expected);
    // If receive gives up first (no space, a corrupt stream), the download must stop too.
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort(ctx.signal?.reason);
    ctx.signal?.addEventListener("abort", onOuterAbort, { once: true });
    let receiveError: unknown;
    // Set when the download broke first: receive then fails only because its input ended early.
    let downloadCut = false;
    receiving.catch((err: unknown) => {
      if (downloadCut) return;
      receiveError = err;
      abort.abort(err);
    });
    try {
      await downloadArtifact({ ...download, offset: 0, sinks: [spoolOut, toReceive], signal: abort.signal });
      fetchedBytes = size;
      toReceive.end();
      await finishWrite(spoolOut);
      const received = await receiving;
      await rm(spool, { force: true });
      return {
        uuid: received.image.uuid,
        receivedUuid: received.image.receivedUuid ?? "",
        bytesTransferred: fetchedBytes,
        resumedFrom: 0,
      };
    } catch (err) {
      if (receiveError === undefined) downloadCut = true;
      toReceive.destroy();
      await finishWrite(spoolOut).catch(() => undefined);
      await receiving.catch(() => undefined);
      if (receiveError !== undefined) {
        // The stream itself was refused: not worth resuming, start from zero next time.
        await rm(spool, { force: true });
        throw receiveError;
      }
      if (!isRetryable(err)) throw err;
      ctx.log.warn(
        { artifact: manifest.artifactId, err: (err as Error).message },
        "transfer cut; resuming from the spool",
      );
      offset = await fileSize(spool);
      fetchedBytes = offset;
    } finally {
      ctx.signal?.removeEventListener("abort", onOuterAbort);
    }
  }

  // Resume: fetch the rest into the spool, retrying cuts, then receive from the whole spool file.
  for (let attempt = 1; offset < size; attempt++) {
    resumedFrom = offset;
    const spoolOut = createWriteStream(spool, { flags: "a", mode: 0o600, highWaterMark: SINK_BUFFER_BYTES });
    try {
      await downloadArtifact({ ...download, offset, sinks: [spoolOut] });
    } catch (err) {
      if (!isRetryable(err) || attempt >= MAX_ATTEMPTS) throw err;
      ctx.log.warn(
        { artifact: manifest.artifactId, offset, attempt, err: (err as Error).message },
        "transfer cut; retrying",
      );
      await delay(Math.min(30_000, 500 * 2 ** attempt));
    } finally {
      await finishWrite(spoolOut).catch(() => undefined);
    }
    const now = await fileSize(spool);
    fetchedBytes += now - offset;
    offset = now;
  }
  ctx.progress.update(size, size, "receive");
  try {
    const received = await receive(store, createReadStream(spool, { highWaterMark: 1024 * 1024 }), {
      ...expected,
      onProgress: (n) => ctx.progress.update(n, size, "receive"),
    });
    return {
      uuid: received.image.uuid,
      receivedUuid: received.image.receivedUuid ?? "",
      bytesTransferred: fetchedBytes,
      resumedFrom,
    };
  } finally {
    // Verified and promoted, or refused: either way the spooled bytes are done with.
    await rm(spool, { force: true });
  }
}
