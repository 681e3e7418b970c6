import type { FastifyReply } from "fastify";

/** A Server-Sent Events answer: `send` writes one event's JSON data, `finish` ends it (once). */
export interface EventStream {
  send(data: unknown): void;
  finish(): void;
}

/**
 * Take over a reply as a Server-Sent Events stream (the live views of rollouts and host updates), with
 * a keepalive comment every 15 s; `onFinish` runs once when it ends, by `finish` or by the client.
 */
export function openEventStream(reply: FastifyReply, onFinish: () => void): EventStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-store",
    connection: "keep-alive",
  });
  let finished = false;
  const keepalive = setInterval(() => res.write(": keepalive\n\n"), 15_000);
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(keepalive);
    onFinish();
    res.end();
  };
  res.on("close", finish);
  return { send: (data) => res.write(`data: ${JSON.stringify(data)}\n\n`), finish };
}
