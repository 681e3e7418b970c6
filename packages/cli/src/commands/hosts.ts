import type { HostView, WindowRuleView } from "@gild/api-client";
import { formatBytes, formatDuration } from "@gild/core";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { ago } from "../format-time.js";
import { formatTable } from "../render.js";
import { type CommandFlags, targetOptions } from "./options.js";

function imagesCell(host: HostView): string {
  const byLine = new Map<string, number[]>();
  for (const i of host.images) byLine.set(i.line, [...(byLine.get(i.line) ?? []), i.version]);
  return (
    [...byLine.entries()]
      .map(([line, versions]) => `${line}@${versions.sort((a, b) => a - b).join(",")}`)
      .join(" ") || "-"
  );
}

function appsCell(host: HostView): string {
  return (
    host.apps
      .map(
        (a) =>
          `${a.name}:${a.imageLine}@${a.imageVersion}${a.codeLine ? `+${a.codeLine}@${a.codeVersion}` : ""}/g${a.generation} ${a.health}`,
      )
      .join(" ") || "-"
  );
}

/** How long the host has been up, from the boot time its agent reported; `-` unless it is online. */
export function uptimeCell(host: HostView, now = Date.now()): string {
  const boot = Number(host.facts.bootTime);
  if (host.state !== "online" || !Number.isFinite(boot) || boot <= 0) return "-";
  const ms = Math.max(0, now - boot);
  // To the minute: the boot time is a second's, on the host's clock.
  return formatDuration(ms < 60_000 ? Math.floor(ms / 1000) * 1000 : Math.floor(ms / 60_000) * 60_000);
}

/** Pending package updates: `3 (1 sec)` with security ones, `unknown` where the host cannot tell. */
export function updatesCell(host: HostView): string {
  const { updates, securityUpdates } = host.facts;
  if (updates === undefined) return "-";
  if (!/^\d+$/.test(updates)) return updates;
  const security = Number(securityUpdates);
  return Number.isInteger(security) && security > 0 ? `${updates} (${security} sec)` : updates;
}

/** The host's maintenance window: `-` without one, else its spec and `open` or when it next opens. */
export function windowCell(host: HostView, now = Date.now()): string {
  const w = host.window;
  if (w === undefined || w.spec === null) return "-";
  if (w.open) return `${w.spec} (open)`;
  return `${w.spec} (opens in ${w.nextOpenAt === null ? "?" : formatDuration(Math.max(0, w.nextOpenAt - now))})`;
}

export function windowRulesTable(rules: readonly WindowRuleView[]): string {
  if (rules.length === 0) return "no maintenance windows: every host may be worked on at any time";
  return formatTable(rules, [
    { header: "TARGET", value: (r) => r.target },
    { header: "KIND", value: (r) => r.kind },
    { header: "WINDOW", value: (r) => r.spec },
    { header: "HOSTS", value: (r) => r.hosts.join(",") || "-" },
    { header: "SET BY", value: (r) => r.setBy ?? "-" },
    { header: "SET", value: (r) => ago(r.setAt) },
  ]);
}

export function hostsTable(hosts: readonly HostView[], now = Date.now()): string {
  if (hosts.length === 0) return "no hosts (join one: gild token create, then gild agent join on the server)";
  return formatTable(hosts, [
    { header: "NAME", value: (h) => h.name },
    { header: "STATE", value: (h) => h.state },
    { header: "LAST SEEN", value: (h) => (h.state === "online" ? "now" : ago(h.lastSeen)) },
    { header: "RUNTIME", value: (h) => h.facts.runtime ?? "-" },
    { header: "KERNEL", value: (h) => h.facts.kernel ?? h.kernelVersion ?? "-" },
    { header: "UPTIME", value: (h) => uptimeCell(h, now), align: "right" },
    { header: "UPDATES", value: updatesCell, align: "right" },
    { header: "REBOOT", value: (h) => (h.facts.rebootRequired === "yes" ? "yes" : "-") },
    { header: "IMAGES", value: imagesCell },
    { header: "APPS", value: appsCell },
    { header: "WINDOW", value: (h) => windowCell(h, now) },
    {
      header: "FREE",
      value: (h) => (h.poolFreeBytes === null ? "-" : formatBytes(h.poolFreeBytes)),
      align: "right",
    },
    {
      header: "LABELS",
      value: (h) =>
        Object.entries(h.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",") || "-",
    },
  ]);
}

/** `gild hosts`, `gild host show|rm`. */
export function registerHostCommands(program: Command, ctx: CliContext): void {
  targetOptions(
    program
      .command("hosts")
      .description(
        "list hosts: state, last seen, runtime driver, kernel, uptime, pending package updates (security ones apart), reboot required, images, apps, maintenance window (open, or when it opens), free space, labels",
      )
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const { hosts } = await ctx.client(flags).call("GET /v1/hosts");
    render.result(hosts, () => hostsTable(hosts));
  });

  const host = program.command("host").description("one host");
  targetOptions(
    host
      .command("show <name>")
      .description("everything the controller knows of a host")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const view = await ctx.client(flags).call("GET /v1/hosts/:name", { params: { name } });
    render.result(view, () => JSON.stringify(view, null, 2));
  });
  targetOptions(
    host
      .command("rm <name>")
      .description("remove a host: revokes its credential and drops its connection at once")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const removed = await ctx.client(flags).call("DELETE /v1/hosts/:name", { params: { name } });
    render.result(removed, () => `removed ${removed.removed}; its credential is revoked`);
  });

  const window = host
    .command("window")
    .description(
      "maintenance windows: rollouts switch and host updates start a host only inside its window (UTC or a fixed offset)",
    );
  targetOptions(
    window
      .command("set <target> <spec>")
      .description(
        "set the windows of a host (its name) or of a label (key=value): '<daily|Sat|Mon-Fri> HH:MM-HH:MM UTC', comma-separated; an end before the start crosses midnight; zones are UTC or a fixed offset like +02:00, never a name. A host's own windows replace its labels'",
      )
      .option("--json", "print JSON"),
  ).action(async (target: string, spec: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const set = await ctx
      .client(flags)
      .call("PUT /v1/maintenance-windows/:target", { params: { target }, body: { spec } });
    render.result(set, () => `maintenance window of ${set.target}: ${set.spec}`);
  });
  targetOptions(
    window
      .command("rm <target>")
      .description(
        "remove the windows of a host or a label: its hosts may be worked on at any time (or in their labels' windows)",
      )
      .option("--json", "print JSON"),
  ).action(async (target: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const removed = await ctx
      .client(flags)
      .call("DELETE /v1/maintenance-windows/:target", { params: { target } });
    render.result(removed, () => `removed the maintenance window of ${removed.removed}`);
  });
  targetOptions(
    window
      .command("ls")
      .description("list window rules with the hosts each governs now")
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const { rules } = await ctx.client(flags).call("GET /v1/maintenance-windows");
    render.result(rules, () => windowRulesTable(rules));
  });
}
