import type { RolloutView as ControllerRolloutView } from "@gild/api-client";
import {
  formatBytes,
  formatDuration,
  isTerminalRolloutState,
  type RolloutEvent,
  type Timeline,
} from "@gild/core";
import { ago } from "../format-time.js";
import { formatProgress, formatTable } from "../render.js";
import { clusterLines, waveJobLines } from "./wave-table.js";

/** A rollout as GET /v1/rollouts/:id and the live feed send it (the snapshot adds its events). */
export type RolloutView = ControllerRolloutView & { events?: RolloutEvent[] };

function countdown(at: number | null, now: number, paused: boolean): string | null {
  if (at === null) return null;
  if (paused) return "paused";
  return at > now ? `in ${formatDuration(at - now)}` : "now";
}

/** The live view: header, clocks, one line per host by wave (with transfer bars), recent events. */
export function renderRollout(
  view: RolloutView,
  events: readonly RolloutEvent[],
  now = Date.now(),
): string[] {
  const paused = view.state === "paused";
  const lines: string[] = [];
  const waveLabel = `wave ${view.currentWave + 1}/${view.waves.length}${view.waves[view.currentWave]?.canary ? " (canary)" : ""}`;
  lines.push(
    `rollout ${view.id}  ${view.image}  ${view.state.toUpperCase()}  ${isTerminalRolloutState(view.state) ? "" : `${waveLabel}, ${view.phase}  `}started ${ago(view.createdAt, now)} by ${view.createdBy ?? "?"}`,
  );
  const clocks: string[] = [];
  const progress = countdown(view.clocks.progressDeadlineAt, now, paused);
  if (progress && !isTerminalRolloutState(view.state)) clocks.push(`progress deadline ${progress}`);
  const bake = countdown(view.clocks.bakeUntil, now, paused);
  if (bake && !isTerminalRolloutState(view.state)) clocks.push(`bake ends ${bake}`);
  if (paused && view.clocks.pausedAt)
    clocks.push(`paused for ${formatDuration(now - view.clocks.pausedAt)} (clocks stopped)`);
  if (view.state === "awaiting-promotion") clocks.push("waiting for: gild rollout promote");
  if (view.versionStatus) clocks.push(`${view.image} is ${view.versionStatus}`);
  lines.push(`  ${clocks.join("   ") || " "}`);
  if (view.reason) lines.push(`  reason: ${view.reason}${view.reasonCode ? ` [${view.reasonCode}]` : ""}`);
  lines.push(...clusterLines(view.failureClusters));
  lines.push(
    ...waveJobLines(
      view.waves,
      (h) => {
        if (h.state === "fetching" && h.progress)
          return formatProgress(h.progress.bytesDone, h.progress.bytesTotal, h.progress.rateBytesPerSecond);
        if (
          (h.state === "switching" || h.state === "verifying" || h.state === "rolling-back") &&
          h.deadlineAt
        ) {
          return `deadline ${countdown(h.deadlineAt, now, paused)}`;
        }
        const bad = h.badPeers?.length ? `bad peer: ${h.badPeers.map((b) => b.host).join(", ")}` : "";
        const note = h.reason || (h.fromVersion ? `from @${h.fromVersion}` : "");
        return [note, bad].filter((s) => s !== "").join("; ");
      },
      events,
    ),
  );
  return lines;
}

/** `gild rollout ls`: history, newest first. */
export function rolloutTable(rollouts: readonly RolloutView[]): string {
  if (rollouts.length === 0) return "no rollouts yet";
  return formatTable(rollouts, [
    { header: "ID", value: (r) => r.id },
    { header: "IMAGE", value: (r) => r.image },
    { header: "STATE", value: (r) => r.state },
    { header: "HOSTS", value: (r) => r.waves.reduce((n, w) => n + w.hosts.length, 0) },
    { header: "WHO", value: (r) => r.createdBy ?? "-" },
    { header: "STARTED", value: (r) => ago(r.createdAt) },
    { header: "TOOK", value: (r) => (r.finishedAt ? formatDuration(r.finishedAt - r.createdAt) : "-") },
    {
      header: "RESULT",
      value: (r) => r.reason ?? (r.state === "succeeded" ? `${r.image} ${r.versionStatus ?? ""}` : ""),
    },
  ]);
}

/** `gild rollout plan`: the wave table and the estimated timeline. */
export function planTable(plan: {
  image: string;
  waves: Array<{ index: number; canary: boolean; hosts: string[] }>;
  timeline: Timeline;
}): string {
  const rows = plan.waves.map((w) => ({ w, t: plan.timeline.waves.find((t) => t.wave === w.index) }));
  const s = (sec: number | undefined) => (sec === undefined ? "-" : formatDuration(sec * 1000));
  const table = formatTable(rows, [
    { header: "WAVE", value: (r) => `${r.w.index + 1}${r.w.canary ? " canary" : ""}` },
    { header: "HOSTS", value: (r) => r.w.hosts.join(",") },
    { header: "DOWNLOAD", value: (r) => (r.t ? formatBytes(r.t.bytes) : "-"), align: "right" },
    { header: "TRANSFER", value: (r) => s(r.t?.transferSeconds) },
    { header: "WINDOW WAIT", value: (r) => (r.t?.windowWaitSeconds ? s(r.t.windowWaitSeconds) : "-") },
    { header: "VERIFY", value: (r) => s(r.t?.verifySeconds) },
    { header: "BAKE", value: (r) => (r.t?.awaitsPromotion ? "manual promote" : s(r.t?.bakeSeconds)) },
    { header: "STARTS", value: (r) => `+${s(r.t?.startsAtSecond)}` },
    { header: "ENDS", value: (r) => `+${s(r.t?.endsAtSecond)}` },
  ]);
  // Per host, when its maintenance window opens, for the hosts that will wait for one.
  const waits = plan.timeline.waves.flatMap((t) =>
    Object.entries(t.windowOpensAt ?? {}).map(
      ([host, at]) => `  ${host}: waits for its maintenance window, opens ${new Date(at).toISOString()}`,
    ),
  );
  const windows = waits.length > 0 ? `\n\nmaintenance windows:\n${waits.join("\n")}` : "";
  return `${plan.image}: ${plan.waves.length} waves, ${plan.waves.reduce((n, w) => n + w.hosts.length, 0)} hosts, about ${s(plan.timeline.totalSeconds)} (plus manual promotion waits)\n\n${table}${windows}`;
}
