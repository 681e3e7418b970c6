import type { ControllerClient } from "@gild/api-client";
import {
  isTerminalRolloutState,
  type RawStrategy,
  ROLLOUT_VERB_NAMES,
  ROLLOUT_VERBS,
  type RolloutEvent,
} from "@gild/core";
import type { Command } from "commander";
import { readSpecFile } from "../config-file.js";
import type { CliContext } from "../context.js";
import { clock } from "../format-time.js";
import type { Renderer } from "../render.js";
import { type CommandFlags, collect, parsePositiveInt, splitList, targetOptions } from "./options.js";
import { planTable, type RolloutView, renderRollout, rolloutTable } from "./rollout-render.js";

interface StrategyFlags {
  file?: string;
  canary?: string;
  waves?: string;
  maxParallel?: string;
  bake?: string;
  canaryBake?: string;
  minHealthy?: string;
  healthyDeadline?: string;
  progressDeadline?: string;
  maxFailures?: string;
  promote?: string;
  onFailure?: string;
  prefetch?: boolean;
  rollbackMaxParallel?: string;
  hosts?: string[];
  apps?: string[];
}

/** The rollout request from --file (YAML or JSON: strategy fields, hosts, apps) and flags (flags win). */
export function rolloutRequest(
  image: string,
  flags: StrategyFlags,
): { image: string; strategy: RawStrategy; hosts?: string[]; apps?: string[] } {
  const fromFile = flags.file ? readSpecFile(flags.file, "rollout") : {};
  const hosts = flags.hosts ? splitList(flags.hosts) : (fromFile.hosts as string[] | undefined);
  const apps = flags.apps ? splitList(flags.apps) : (fromFile.apps as string[] | undefined);
  delete fromFile.hosts;
  delete fromFile.apps;
  const strategy: Record<string, unknown> = { ...fromFile };
  const set = (key: keyof RawStrategy, value: unknown) => {
    if (value !== undefined) strategy[key] = value;
  };
  set(
    "canary",
    flags.canary !== undefined && /^\d+$/.test(flags.canary) ? Number(flags.canary) : flags.canary,
  );
  set("waves", flags.waves === undefined ? undefined : splitList(flags.waves));
  set("maxParallel", flags.maxParallel);
  set("bake", flags.bake);
  set("canaryBake", flags.canaryBake);
  set("minHealthy", flags.minHealthy);
  set("healthyDeadline", flags.healthyDeadline);
  set("progressDeadline", flags.progressDeadline);
  set("maxFailures", flags.maxFailures);
  set("promote", flags.promote);
  set("onFailure", flags.onFailure);
  set("rollbackMaxParallel", flags.rollbackMaxParallel);
  if (flags.prefetch === false) strategy.prefetch = false;
  return { image, strategy: strategy as RawStrategy, ...(hosts ? { hosts } : {}), ...(apps ? { apps } : {}) };
}

function strategyOptions(cmd: Command): Command {
  return cmd
    .option("--file <path>", "rollout file (YAML or JSON): strategy fields, hosts, apps; flags override it")
    .option("--canary <n|hosts>", "canary host count, or host names (comma separated) [1]")
    .option(
      "--waves <sizes>",
      "batch sizes after the canary, counts or percents; the last repeats [25%,100%]",
    )
    .option("--max-parallel <n>", "hosts switching at once inside a wave [whole wave]")
    .option("--bake <duration>", "wait after each wave [60s; at most 90d]")
    .option("--canary-bake <duration>", "wait after the canary when --promote auto [5m; at most 90d]")
    .option(
      "--min-healthy <duration>",
      "a host counts as healthy after holding healthy this long without a break [10s; at most 1d]",
    )
    .option("--healthy-deadline <duration>", "a switched host must be healthy within this [5m; at most 7d]")
    .option(
      "--progress-deadline <duration>",
      "a wave without progress for this long fails [10m; at most 90d]",
    )
    .option("--max-failures <n|p%>", "failed hosts a wave tolerates; the canary tolerates none [0]")
    .option("--promote <mode>", "after the canary: manual (wait for `gild rollout promote`) or auto [manual]")
    .option("--on-failure <action>", "when a wave fails: rollback or pause [rollback]")
    .option("--no-prefetch", "do not download the next wave's image while the current one verifies")
    .option("--rollback-max-parallel <n>", "hosts rolling back at once [half the hosts]")
    .option("--hosts <names>", "only these hosts (names or label selectors), comma separated", collect)
    .option("--apps <names>", "only these apps of the line, comma separated", collect);
}

/**
 * Follow a rollout's live feed until it is terminal (a live view on a TTY, event lines otherwise).
 * Resolves with its final state.
 */
export async function watchRollout(
  client: ControllerClient,
  render: Renderer,
  id: string,
): Promise<RolloutView> {
  let view: RolloutView | undefined;
  const events: RolloutEvent[] = [];
  const draw = () => {
    if (view && !render.json) render.live(renderRollout(view, events));
  };
  const tick = setInterval(draw, 1000);
  try {
    for (;;) {
      for await (const message of client.events(`/v1/rollouts/${encodeURIComponent(id)}/events`)) {
        if (message.type === "snapshot") {
          view = message.rollout as RolloutView;
          events.splice(0, events.length, ...(message.events as RolloutEvent[]));
        } else if (message.type === "rollout") view = message.rollout as RolloutView;
        else if (message.type === "event") {
          const event = message.event as RolloutEvent;
          events.push(event);
          if (!process.stderr.isTTY && !render.json) render.note(`${clock(event.at)}  ${event.message}`);
        } else if (message.type === "progress" && view) {
          const { hostId, progress } = message as unknown as {
            hostId: string;
            progress: NonNullable<RolloutView["waves"][number]["hosts"][number]["progress"]>;
          };
          for (const w of view.waves) for (const h of w.hosts) if (h.hostId === hostId) h.progress = progress;
        }
        draw();
      }
      // The feed ends at a terminal state, or when the link broke (a controller restart): look again.
      view = await client.call("GET /v1/rollouts/:id", { params: { id } });
      if (isTerminalRolloutState(view.state)) break;
    }
  } finally {
    clearInterval(tick);
    draw();
    render.endLive();
  }
  return view;
}

function finish(render: Renderer, view: RolloutView): void {
  render.result(view, () => renderRollout(view, view.events ?? []).join("\n"));
  if (view.state !== "succeeded") {
    render.note(
      `rollout ${view.id} ended ${view.state}${view.reason ? `: ${view.reason}` : ""} [${view.reasonCode ?? "GILD_ROLLOUT_FAILED"}]`,
    );
    process.exitCode = 1;
  }
}

/** `gild rollout plan|start|status|ls|pause|resume|promote|abort|rollback`. */
export function registerRolloutCommands(program: Command, ctx: CliContext): void {
  const rollout = program
    .command("rollout")
    .description("move an image line to a version across the fleet: canary, waves, health gates");

  targetOptions(
    strategyOptions(
      rollout
        .command("plan <image>")
        .description("dry run: the waves, their hosts, and an estimated timeline"),
    ),
  )
    .option("--json", "print JSON")
    .action(async (image: string, flags: StrategyFlags & CommandFlags) => {
      const render = ctx.renderer(flags);
      const plan = await ctx
        .client(flags)
        .call("POST /v1/rollouts/plan", { body: rolloutRequest(image, flags) });
      render.result(plan, () => planTable(plan));
    });

  targetOptions(
    strategyOptions(
      rollout.command("start <image>").description("start a rollout, e.g. php@3 (one per line at a time)"),
    )
      .option("--watch", "follow it in the live view until it ends (exit 0 on success)")
      .option("--json", "print JSON"),
  ).action(async (image: string, flags: StrategyFlags & CommandFlags & { watch?: boolean }) => {
    const render = ctx.renderer(flags);
    const client = ctx.client(flags);
    const started = await client.call("POST /v1/rollouts", { body: rolloutRequest(image, flags) });
    if (!flags.watch) {
      render.result(
        started,
        () =>
          `${renderRollout(started, []).join("\n")}\n\nfollow it: gild rollout status ${started.id} --watch`,
      );
      return;
    }
    finish(render, { ...(await watchRollout(client, render, started.id)), events: [] });
  });

  targetOptions(
    rollout
      .command("status [id]")
      .description("a rollout's waves, hosts, clocks and failures (default: the active one, else the newest)")
      .option("--watch", "live view until it ends; exit 0 on success, 1 otherwise")
      .option("--json", "print JSON"),
  ).action(async (id: string | undefined, flags: CommandFlags & { watch?: boolean }) => {
    const render = ctx.renderer(flags);
    const client = ctx.client(flags);
    const view = await client.call("GET /v1/rollouts/:id", { params: { id: id ?? "current" } });
    if (!flags.watch) {
      render.result(view, () => renderRollout(view, view.events ?? []).join("\n"));
      return;
    }
    const final = await watchRollout(client, render, view.id);
    finish(render, { ...final, events: [] });
  });

  targetOptions(
    rollout
      .command("ls")
      .description("rollout history: who, when, what, result")
      .option("--limit <n>", "how many (default 20)")
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags & { limit?: string }) => {
    const render = ctx.renderer(flags);
    const limit = flags.limit ? parsePositiveInt(flags.limit, "--limit") : 20;
    const { rollouts } = await ctx
      .client(flags)
      .call("GET /v1/rollouts", { query: { limit: String(limit) } });
    render.result(rollouts, () => rolloutTable(rollouts));
  });

  for (const verb of ROLLOUT_VERB_NAMES) {
    const { description } = ROLLOUT_VERBS[verb];
    const cmd = rollout
      .command(`${verb} [id]`)
      .description(`${description} (default: the active rollout)`)
      .option("--json", "print JSON");
    if (verb === "rollback") cmd.option("--max-parallel <n>", "hosts rolling back at once");
    targetOptions(cmd).action(
      async (id: string | undefined, flags: CommandFlags & { maxParallel?: string }) => {
        const render = ctx.renderer(flags);
        const body = flags.maxParallel
          ? { maxParallel: parsePositiveInt(flags.maxParallel, "--max-parallel") }
          : {};
        const view = await ctx
          .client(flags)
          .call("POST /v1/rollouts/:id/:verb", { params: { id: id ?? "current", verb }, body });
        render.result(view, () => `${verb}: rollout ${view.id} is now ${view.state}`);
      },
    );
  }
}
