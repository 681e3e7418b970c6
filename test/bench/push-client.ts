import { readFileSync } from "node:fs";
import { join } from "node:path";
import { openControllerRequest, type PushEvent } from "@gild/api-client";
import type { Fleet } from "@gild/testkit";

/** One push as this process saw it: each streamed event with its time since the request was made. */
export interface PushTrace {
  totalMs: number;
  bytes: number;
  streamVersion: number;
  events: Array<{ ms: number; what: string }>;
}

function describe(e: PushEvent): string {
  const p = e.progress;
  if (p) return `${e.state} ${p.phase} ${p.bytesDone}/${p.bytesTotal}`;
  return `${e.state}${e.artifact ? ` (artifact ${e.artifact.sizeBytes} bytes, parent @${e.artifact.parentVersion})` : ""}`;
}

/**
 * Deliver a version to one host through the controller's API (what `gild image push` calls), from
 * this process, so that the CLI's own start-up is not part of it; every event is timed as it arrives.
 */
export async function pushTraced(fleet: Fleet, ref: string, host: string): Promise<PushTrace> {
  const [line, version] = ref.split("@");
  const trust = { caPem: readFileSync(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8") };
  const token = readFileSync(join(fleet.controllerDataDir, "admin.token"), "utf8").trim();
  const t0 = performance.now();
  const res = await openControllerRequest(
    "POST",
    `${fleet.controllerUrl}/v1/images/${line}/${version}/push`,
    { hosts: [host] },
    trust,
    { authorization: `Bearer ${token}` },
  );
  const events: PushTrace["events"] = [{ ms: performance.now() - t0, what: "response headers" }];
  let pending = "";
  let last: (Partial<PushEvent> & { type: string; result?: { hosts: PushEvent[] } }) | undefined;
  for await (const chunk of res) {
    pending += (chunk as Buffer).toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const text of lines.filter((l) => l.trim() !== "")) {
      last = JSON.parse(text) as typeof last;
      const ms = performance.now() - t0;
      events.push({ ms, what: last?.type === "host" ? describe(last as PushEvent) : (last?.type ?? "?") });
    }
  }
  if (pending.trim() !== "") last = JSON.parse(pending) as typeof last;
  const totalMs = performance.now() - t0;
  const result = last?.result?.hosts[0];
  if (last?.type !== "result" || result?.state !== "done" || !result.artifact)
    throw new Error(`push ${ref}: ${JSON.stringify(last).slice(0, 2000)}`);
  return { totalMs, bytes: result.artifact.sizeBytes, streamVersion: result.artifact.streamVersion, events };
}
