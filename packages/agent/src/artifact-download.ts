import type { Writable } from "node:stream";
import { GildError } from "@gild/core";
import { type ArtifactReadOptions, readArtifact } from "./artifact-reader.js";

/** readArtifact's options, with writable sinks in place of its view-lending onData. */
export interface DownloadOptions extends Omit<ArtifactReadOptions, "onData"> {
  /** Where the bytes go, in order; the socket pauses until every sink drained. */
  sinks: Writable[];
  /** Called with every chunk, in order, before it is written (to hash the stream as it arrives). */
  onChunk?: (chunk: Buffer) => void;
}

/**
 * The coded error for a sink that failed: its own when it has one (a chunk that failed its digest),
 * GILD_NO_SPACE for a full disk or quota.
 */
export function sinkFailure(err: NodeJS.ErrnoException): GildError {
  if (err instanceof GildError) return err;
  if (err.code === "ENOSPC" || err.code === "EDQUOT") {
    return new GildError("GILD_NO_SPACE", `no space left to store the download: ${err.message}`, {
      hint: "free space on the host's pool (gild image rm <line>@<old version> --hosts <host>), then push again",
      cause: err,
    });
  }
  return new GildError("GILD_INTERNAL", `writing the download failed: ${err.message}`, { cause: err });
}

/** True for failures another attempt may fix (a cut connection); false for refusals. */
export function isRetryable(err: unknown): boolean {
  return err instanceof GildError && (err.code === "GILD_TRANSFER_FAILED" || err.code === "GILD_UNAVAILABLE");
}

/**
 * Fetch an artifact from `offset` into writable sinks (readArtifact, with a copy of each piece: a sink
 * keeps what it was given until it is written). The socket is paused whenever a sink pushes back, so
 * memory stays bounded whatever the artifact size. Resolves when all `size` bytes arrived and the
 * controller closed normally.
 */
export async function downloadArtifact(options: DownloadOptions): Promise<void> {
  const { sinks, onChunk, ...rest } = options;
  let pending = 0;
  const read = readArtifact({
    ...rest,
    onData: (piece) => {
      const data = Buffer.from(piece);
      onChunk?.(data);
      for (const sink of sinks) {
        if (sink.write(data)) continue;
        if (pending++ === 0) read.pause();
        sink.once("drain", () => {
          if (--pending === 0) read.resume();
        });
      }
    },
  });
  // A sink that cannot write (a full disk) ends the transfer with a coded error; without a listener
  // its 'error' event would be unhandled and take the whole agent down.
  const onError = (err: Error) => read.fail(sinkFailure(err));
  for (const sink of sinks) sink.on("error", onError);
  try {
    await read.done;
  } finally {
    for (const sink of sinks) sink.off("error", onError);
  }
}
