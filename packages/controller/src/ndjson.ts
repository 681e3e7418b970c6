import { PassThrough } from "node:stream";
import { toGildError } from "@gild/core";
import type { FastifyReply } from "fastify";

/**
 * Answer a long operation as newline-delimited JSON: progress lines as `{type, ...}` while it runs,
 * then `{type: "result", result}` or `{type: "error", error}`. The HTTP status is 200 once streaming
 * starts; the last line carries the outcome.
 */
export function streamNdjson<T>(
  reply: FastifyReply,
  work: (emit: (line: Record<string, unknown>) => void) => Promise<T>,
  onDone?: (outcome: { ok: boolean; summary: string }) => void,
): FastifyReply {
  const out = new PassThrough();
  const emit = (line: Record<string, unknown>) => {
    if (!out.writableEnded) out.write(`${JSON.stringify(line)}\n`);
  };
  // A line at once and then every 10 s: the answer starts right away, and a long silent step (making a
  // 2 GiB artifact, debootstrap resolving) never looks like a dead connection to the client.
  emit({ type: "started" });
  const keepalive = setInterval(() => emit({ type: "keepalive" }), 10_000);
  work(emit).then(
    (result) => {
      clearInterval(keepalive);
      emit({ type: "result", result });
      onDone?.({ ok: true, summary: "ok" });
      out.end();
    },
    (err: unknown) => {
      const gild = toGildError(err);
      clearInterval(keepalive);
      emit({ type: "error", error: gild.toJSON() });
      onDone?.({ ok: false, summary: gild.code });
      out.end();
    },
  );
  return reply.type("application/x-ndjson").header("cache-control", "no-store").send(out);
}
