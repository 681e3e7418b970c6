import type { HostUpdatePlanView, HostUpdateView } from "@gild/api-client";
import { formatDuration, type HostUpdateEvent } from "@gild/core";
import { ago, when } from "../format-time.js";
import { formatTable } from "../render.js";
import { clusterLines, waveJobLines } from "./wave-table.js";

/** A host update as GET /v1/host-updates/:id sends it. */
export type HostUpdateStatusView = HostUpdateView & { events?: HostUpdateEvent[] };

const argvText = (argv: readonly string[]) =>
  argv[0] === "/bin/sh" && argv[1] === "-c" && argv.length === 3 ? (argv[2] as string) : JSON.stringify(argv);

/** `gild host-update status`: header, one line per host by wave (its reason or the output's last line). */
export function renderHostUpdate(view: HostUpdateStatusView, now = Date.now()): string[] {
  const lines: string[] = [];
  const wave = `wave ${view.currentWave + 1}/${view.waves.length}${view.waves[view.currentWave]?.canary ? " (canary)" : ""}`;
  lines.push(
    `host update ${view.id}  ${view.state.toUpperCase()}  ${view.settled ? "" : `${wave}, ${view.phase}  `}started ${ago(view.createdAt, now)} by ${view.createdBy ?? "?"}`,
  );
  lines.push(`  command: ${argvText(view.argv)}   reboot: ${view.strategy.reboot}`);
  if (view.reason) lines.push(`  reason: ${view.reason}${view.reasonCode ? ` [${view.reasonCode}]` : ""}`);
  lines.push(...clusterLines(view.failureClusters));
  lines.push(
    ...waveJobLines(
      view.waves,
      (h) => {
        if (h.reason) return h.reason;
        if (h.deadlineAt && h.state !== "done")
          return `deadline ${h.deadlineAt > now ? `in ${formatDuration(h.deadlineAt - now)}` : "now"}`;
        return h.outputTail.trimEnd().split("\n").slice(-1)[0] ?? "";
      },
      view.events ?? [],
    ),
  );
  return lines;
}

/** `gild host-update plan`: the waves, and what a failure means. */
export function hostUpdatePlanTable(plan: HostUpdatePlanView): string {
  const table = formatTable(plan.waves, [
    { header: "WAVE", value: (w) => `${w.index + 1}${w.canary ? " canary" : ""}` },
    { header: "HOSTS", value: (w) => w.hosts.join(",") },
  ]);
  // Hosts outside their maintenance window now start only when it opens.
  const waits = plan.waves.flatMap((w) =>
    Object.entries(w.windowOpensAt ?? {}).map(
      ([host, at]) => `  ${host}: waits for its maintenance window, opens ${new Date(at).toISOString()}`,
    ),
  );
  const s = plan.strategy;
  const hosts = plan.waves.reduce((n, w) => n + w.hosts.length, 0);
  return [
    `${argvText(plan.argv)}: ${plan.waves.length} waves, ${hosts} hosts, at most ${"count" in s.maxUnavailable ? s.maxUnavailable.count : `${s.maxUnavailable.percent}%`} at once, reboot ${s.reboot}, deadline ${formatDuration(s.deadlineMs)}, on failure ${s.onFailure}`,
    "",
    table,
    "",
    ...(waits.length > 0 ? ["maintenance windows:", ...waits, ""] : []),
    ...plan.notes.map((n) => `note: ${n}`),
  ].join("\n");
}

/** One row per host update, newest first: `gild host-update ls`. */
export function hostUpdateTable(jobs: readonly HostUpdateView[]): string {
  if (jobs.length === 0) return "no host updates (start one with gild host-update start)";
  return formatTable(jobs, [
    { header: "ID", value: (j) => j.id },
    { header: "STATE", value: (j) => j.state.toUpperCase() },
    {
      header: "HOSTS",
      value: (j) => {
        const hosts = j.waves.flatMap((w) => w.hosts);
        return `${hosts.filter((h) => h.state === "done").length}/${hosts.length} done`;
      },
    },
    { header: "COMMAND", value: (j) => clip(argvText(j.argv), 48) },
    { header: "REBOOT", value: (j) => j.strategy.reboot },
    { header: "STARTED", value: (j) => when(j.createdAt) },
    { header: "BY", value: (j) => j.createdBy ?? "-" },
    { header: "REASON", value: (j) => clip(j.reason ?? "", 60) },
  ]);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
