import type { ControllerClient, HostUpdateRequestBody } from "@gild/api-client";
import {
  HOST_UPDATE_VERB_NAMES,
  HOST_UPDATE_VERBS,
  type HostUpdateEvent,
  type RawHostUpdateStrategy,
} from "@gild/core";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { clock } from "../format-time.js";
import type { Renderer } from "../render.js";
import {
  type HostUpdateStatusView,
  hostUpdatePlanTable,
  hostUpdateTable,
  renderHostUpdate,
} from "./host-update-render.js";
import { type CommandFlags, collect, parsePositiveInt, splitList, targetOptions } from "./options.js";

interface HostUpdateFlags extends CommandFlags {
  command?: string;
  hosts?: string[];
  canary?: string;
  waves?: string;
  maxUnavailable?: string;
  reboot?: string;
  timeout?: string;
  deadline?: string;
  minHealthy?: string;
  bake?: string;
  onFailure?: string;
}

/** The request from the flags: --command TEXT, or the argv after `--`. */
export function hostUpdateRequest(argv: readonly string[], flags: HostUpdateFlags): HostUpdateRequestBody {
  const strategy: Record<string, unknown> = {};
  const set = (key: keyof RawHostUpdateStrategy, value: unknown) => {
    if (value !== undefined) strategy[key] = value;
  };
  set(
    "canary",
    flags.canary !== undefined && /^\d+$/.test(flags.canary) ? Number(flags.canary) : flags.canary,
  );
  set("waves", flags.waves === undefined ? undefined : splitList(flags.waves));
  set("maxUnavailable", flags.maxUnavailable);
  set("reboot", flags.reboot);
  set("commandTimeout", flags.timeout);
  set("deadline", flags.deadline);
  set("minHealthy", flags.minHealthy);
  set("bake", flags.bake);
  set("onFailure", flags.onFailure);
  return {
    ...(flags.command !== undefined ? { command: flags.command } : {}),
    ...(argv.length > 0 ? { argv: [...argv] } : {}),
    hosts: splitList(flags.hosts),
    strategy: strategy as RawHostUpdateStrategy,
  };
}

function jobOptions(cmd: Command): Command {
  return cmd
    .option(
      "--hosts <selectors>",
      "hosts: names and key=value label selectors, comma separated (required)",
      collect,
    )
    .option(
      "--command <text>",
      "the command as one shell text, run by /bin/sh -c (or give PROGRAM ARGS after --)",
    )
    .option("--canary <n|hosts>", "canary host count, or host names (comma separated) [1]")
    .option(
      "--waves <sizes>",
      "batch sizes after the canary, counts or percents; the last repeats [25%,100%]",
    )
    .option("--max-unavailable <n|p%>", "hosts of a wave in flight at once (command, reboot, checks) [1]")
    .option(
      "--reboot <when>",
      "never, if-required (/run/reboot-required after the command) or always [if-required]",
    )
    .option(
      "--timeout <duration>",
      "the command is killed after this long, and the host fails [30m; at most 7d]",
    )
    .option(
      "--deadline <duration>",
      "after the command (or the reboot), a host must be back with every app healthy within this [10m; at most 7d]",
    )
    .option(
      "--min-healthy <duration>",
      "every app must hold healthy this long without a break [10s; at most 1d]",
    )
    .option("--bake <duration>", "wait after each wave but the last [60s; at most 90d]")
    .option(
      "--on-failure <action>",
      "when a host fails: pause (resume accepts it) or fail [pause]; nothing is undone",
    );
}

/**
 * Follow a job's live feed until it is settled (a live view on a TTY, event lines otherwise).
 * Resolves with its final view.
 */
async function watchHostUpdate(
  client: ControllerClient,
  render: Renderer,
  id: string,
): Promise<HostUpdateStatusView> {
  let view: HostUpdateStatusView | undefined;
  const events: HostUpdateEvent[] = [];
  const draw = () => {
    if (view && !render.json) render.live(renderHostUpdate({ ...view, events }));
  };
  const tick = setInterval(draw, 1000);
  try {
    for (;;) {
      for await (const message of client.events(`/v1/host-updates/${encodeURIComponent(id)}/events`)) {
        if (message.type === "snapshot") {
          view = message.hostUpdate as HostUpdateStatusView;
          events.splice(0, events.length, ...(message.events as HostUpdateEvent[]));
        } else if (message.type === "hostUpdate") view = message.hostUpdate as HostUpdateStatusView;
        else if (message.type === "event") {
          const event = message.event as HostUpdateEvent;
          events.push(event);
          if (!process.stderr.isTTY && !render.json) render.note(`${clock(event.at)}  ${event.message}`);
        }
        draw();
      }
      // The feed ends once the job is settled, or when the link broke (a controller restart): look again.
      view = await client.call("GET /v1/host-updates/:id", { params: { id } });
      if (view.settled) break;
    }
  } finally {
    clearInterval(tick);
    draw();
    render.endLive();
  }
  return view;
}

function finish(render: Renderer, view: HostUpdateStatusView): void {
  render.result(view, () => renderHostUpdate(view).join("\n"));
  if (view.state !== "succeeded") {
    render.note(`host update ${view.id} ended ${view.state}${view.reason ? `: ${view.reason}` : ""}`);
    process.exitCode = 1;
  }
}

/** `gild host-update plan|start|status|pause|resume|abort`. */
export function registerHostUpdateCommands(program: Command, ctx: CliContext): void {
  const hu = program
    .command("host-update")
    .description(
      "run a command on hosts (OS maintenance), canary first and in waves, rebooting where needed",
    );

  targetOptions(
    jobOptions(hu.command("plan [argv...]").description("dry run: the waves and their hosts; nothing runs")),
  )
    .option("--json", "print JSON")
    .action(async (argv: string[], flags: HostUpdateFlags) => {
      const render = ctx.renderer(flags);
      const plan = await ctx
        .client(flags)
        .call("POST /v1/host-updates/plan", { body: hostUpdateRequest(argv, flags) });
      render.result(plan, () => hostUpdatePlanTable(plan));
    });

  targetOptions(
    jobOptions(
      hu
        .command("start [argv...]")
        .description(
          "start a host update, e.g. --hosts role=web --command 'apt-get update && apt-get -y upgrade'",
        ),
    )
      .option("--watch", "follow it until it ends (exit 0 on success)")
      .option("--json", "print JSON"),
  ).action(async (argv: string[], flags: HostUpdateFlags & { watch?: boolean }) => {
    const render = ctx.renderer(flags);
    const client = ctx.client(flags);
    const started = await client.call("POST /v1/host-updates", { body: hostUpdateRequest(argv, flags) });
    if (!flags.watch) {
      render.result(
        started,
        () =>
          `${renderHostUpdate(started).join("\n")}\n\nfollow it: gild host-update status ${started.id} --watch`,
      );
      return;
    }
    finish(render, await watchHostUpdate(client, render, started.id));
  });

  targetOptions(
    hu
      .command("status [id]")
      .description("a host update's waves, hosts and failures (default: the active one, else the newest)")
      .option("--watch", "live view until it ends; exit 0 on success, 1 otherwise")
      .option("--json", "print JSON"),
  ).action(async (id: string | undefined, flags: CommandFlags & { watch?: boolean }) => {
    const render = ctx.renderer(flags);
    const client = ctx.client(flags);
    const view = await client.call("GET /v1/host-updates/:id", { params: { id: id ?? "current" } });
    if (!flags.watch) {
      render.result(view, () => renderHostUpdate(view).join("\n"));
      return;
    }
    finish(render, await watchHostUpdate(client, render, view.id));
  });

  targetOptions(
    hu
      .command("ls")
      .description("host update history: what ran, on how many hosts, who started it, how it ended")
      .option("--limit <n>", "how many (default 20)")
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags & { limit?: string }) => {
    const render = ctx.renderer(flags);
    const limit = flags.limit ? parsePositiveInt(flags.limit, "--limit") : 20;
    const { hostUpdates } = await ctx
      .client(flags)
      .call("GET /v1/host-updates", { query: { limit: String(limit) } });
    render.result(hostUpdates, () => hostUpdateTable(hostUpdates));
  });

  for (const verb of HOST_UPDATE_VERB_NAMES) {
    targetOptions(
      hu
        .command(`${verb} [id]`)
        .description(`${HOST_UPDATE_VERBS[verb].description} (default: the active host update)`)
        .option("--json", "print JSON"),
    ).action(async (id: string | undefined, flags: CommandFlags) => {
      const render = ctx.renderer(flags);
      const view = await ctx
        .client(flags)
        .call("POST /v1/host-updates/:id/:verb", { params: { id: id ?? "current", verb } });
      render.result(view, () => `${verb}: host update ${view.id} is now ${view.state}`);
    });
  }
}
