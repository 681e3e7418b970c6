import { clock } from "../format-time.js";
import { formatTable } from "../render.js";

/** A host of a wave job (rollout, host update) as views show it: enough for the table's first columns. */
interface WaveHost {
  name: string;
  online: boolean;
  state: string;
}

/**
 * The host table of a wave job's status, indented: WAVE (on each wave's first host), HOST (offline
 * marked), STATE, and the job's own DETAIL; then the last events.
 */
export function waveJobLines<H extends WaveHost>(
  waves: ReadonlyArray<{ index: number; canary: boolean; hosts: readonly H[] }>,
  detail: (host: H) => string,
  events: ReadonlyArray<{ at: number; message: string }>,
): string[] {
  const rows = waves.flatMap((w) => w.hosts.map((h, i) => ({ w, h, first: i === 0 })));
  const table = formatTable(rows, [
    { header: "WAVE", value: (r) => (r.first ? `${r.w.index + 1}${r.w.canary ? " canary" : ""}` : "") },
    { header: "HOST", value: (r) => `${r.h.name}${r.h.online ? "" : " (offline)"}` },
    { header: "STATE", value: (r) => r.h.state },
    { header: "DETAIL", value: (r) => detail(r.h) },
  ]);
  const lines = table.split("\n").map((l) => `  ${l}`);
  const recent = events.slice(-6);
  if (recent.length > 0) {
    lines.push("  events:");
    for (const e of recent) lines.push(`    ${clock(e.at)}  ${e.message}`);
  }
  return lines;
}

/**
 * What the failed hosts of a wave job share that the healthy ones do not, one line each (none when
 * nothing is shared; older controllers send no clusters at all).
 */
export function clusterLines(clusters: ReadonlyArray<{ summary: string }> | undefined): string[] {
  if (!clusters || clusters.length === 0) return [];
  return ["  failures in common:", ...clusters.map((c) => `    ${c.summary}`)];
}
