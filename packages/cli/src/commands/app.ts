import { setTimeout as delay } from "node:timers/promises";
import type { AppInstanceView, AppView, DeployEvent, RouteStream } from "@gild/api-client";
import { healthShorthand } from "@gild/core";
import type { Command } from "commander";
import { readSpecFile } from "../config-file.js";
import type { CliContext } from "../context.js";
import { followHosts } from "../follow-hosts.js";
import { since } from "../format-time.js";
import { formatProgress, formatTable, type Renderer } from "../render.js";
import {
  type CommandFlags,
  collect,
  parseKeyValues,
  parsePositiveInt,
  splitList,
  targetOptions,
} from "./options.js";

/** Per-host rows of apps: host, generation, image version, state and health. */
export function appTable(apps: readonly AppView[]): string {
  const rows = apps.flatMap((a) =>
    a.instances.length === 0
      ? [{ app: a, i: undefined as AppInstanceView | undefined }]
      : a.instances.map((i) => ({ app: a, i: i as AppInstanceView | undefined })),
  );
  if (rows.length === 0) return "no apps (define one with gild app create)";
  return formatTable(rows, [
    { header: "APP", value: (r) => r.app.spec.name },
    { header: "HOST", value: (r) => r.i?.host ?? "(not deployed)" },
    { header: "IMAGE", value: (r) => (r.i ? `${r.app.spec.image}@${r.i.imageVersion}` : r.app.spec.image) },
    ...(apps.some((a) => a.spec.code)
      ? [
          {
            header: "CODE",
            value: (r: (typeof rows)[number]) =>
              r.app.spec.code ? (r.i ? `${r.app.spec.code}@${r.i.codeVersion}` : r.app.spec.code) : "-",
          },
        ]
      : []),
    { header: "GEN", value: (r) => (r.i ? `g${r.i.generation}` : "-") },
    {
      header: "STATE",
      value: (r) =>
        r.i ? `${r.i.state}${r.i.hostState === "online" ? "" : ` (host ${r.i.hostState})`}` : "-",
    },
    {
      header: "HEALTH",
      value: (r) =>
        r.i
          ? `${r.i.health}${r.i.health === "healthy" && r.i.healthSince ? ` for ${since(r.i.healthSince)}` : ""}`
          : "-",
    },
    {
      header: "PREVIOUS",
      value: (r) =>
        r.i?.previousGeneration
          ? `g${r.i.previousGeneration} (@${r.i.previousImageVersion}${r.app.spec.code ? `, code @${r.i.previousCodeVersion}` : ""})`
          : "-",
    },
    {
      header: "DETAIL",
      value: (r) => (r.i ? `${r.i.healthDetail}${r.i.specCurrent ? "" : " [older spec]"}` : ""),
    },
  ]);
}

function deployLine(e: DeployEvent): string {
  const host = e.host.padEnd(16);
  switch (e.state) {
    case "pulling":
      return e.progress
        ? `${host} pulling ${formatProgress(e.progress.bytesDone, e.progress.bytesTotal, e.progress.rateBytesPerSecond)}`
        : `${host} pulling`;
    case "switching":
      return `${host} switching (waiting for health)`;
    case "done":
      return `${host} done: generation g${e.generation} runs${e.previousGeneration ? `, g${e.previousGeneration} kept for rollback` : ""}`;
    case "rolled-back":
      return `${host} ROLLED BACK to g${e.generation} (healthy again): ${e.reason ?? e.error?.message ?? ""}`;
    case "removed":
      return `${host} removed`;
    case "rollback-failed":
      return `${host} ROLLBACK FAILED: back on g${e.generation}, NOT HEALTHY: ${e.reason ?? e.error?.message ?? ""}${e.error ? ` [${e.error.code}]` : ""}`;
    default:
      return `${host} FAILED: ${e.error?.message ?? e.reason ?? "unknown"}${e.error ? ` [${e.error.code}]` : ""}`;
  }
}

/** Follow an NDJSON deploy or rollback, with live per-host lines; exit 1 when any host did not switch. */
async function followDeploy(
  render: Renderer,
  stream: RouteStream<"POST /v1/apps/:name/deploy"> | RouteStream<"POST /v1/apps/:name/hosts">,
  done: DeployEvent["state"][] = ["done"],
): Promise<void> {
  const result = await followHosts(render, stream, {
    line: deployLine,
    isLive: (e: DeployEvent) => e.state === "pulling" && Boolean(e.progress),
  });
  // Each host's outcome was printed as it happened; the result is a one-line summary (or the JSON).
  const ok = result.hosts.filter((h) => done.includes(h.state)).length;
  render.result(
    result.hosts,
    () =>
      `${ok} of ${result.hosts.length} host(s) ${done.includes("removed") ? "done" : "switched"}${ok < result.hosts.length ? `, ${result.hosts.length - ok} did not` : ""}`,
  );
  if (ok < result.hosts.length) process.exitCode = 1;
}

/** The app spec from --file (YAML or JSON) and flags (flags win). */
export function appSpecFromFlags(name: string, flags: Record<string, unknown>): Record<string, unknown> {
  let spec: Record<string, unknown> = {};
  if (typeof flags.file === "string") spec = readSpecFile(flags.file, "app");
  if (name) spec.name = name;
  if (flags.image !== undefined) spec.image = flags.image;
  if (flags.code !== undefined) spec.code = flags.code;
  if (flags.codeMount !== undefined) spec.codeMount = flags.codeMount;
  if (flags.hosts !== undefined) spec.hosts = splitList(flags.hosts as string[]);
  if (flags.cmd !== undefined) spec.cmd = flags.cmd;
  if (flags.env !== undefined)
    spec.env = {
      ...((spec.env as Record<string, string>) ?? {}),
      ...parseKeyValues(flags.env as string[], "--env"),
    };
  if (flags.data !== undefined) spec.data = flags.data;
  if (flags.port !== undefined) spec.port = Number(flags.port);
  if (flags.stopTimeout !== undefined) spec.stopTimeout = flags.stopTimeout;
  if (flags.healthyDeadline !== undefined) spec.healthyDeadline = flags.healthyDeadline;
  if (flags.health !== undefined) {
    const health: Record<string, unknown> = { ...healthShorthand(flags.health as string) };
    if (flags.healthInterval !== undefined) health.interval = flags.healthInterval;
    if (flags.healthTimeout !== undefined) health.timeout = flags.healthTimeout;
    if (flags.healthInitialDelay !== undefined) health.initialDelay = flags.healthInitialDelay;
    if (flags.minHealthy !== undefined) health.minHealthy = flags.minHealthy;
    spec.health = health;
  }
  return spec;
}

/** `gild app create|ls|show|logs|rm|deploy|rollback`. */
export function registerAppCommands(program: Command, ctx: CliContext): void {
  const app = program
    .command("app")
    .description("apps: containers on snapshots of a golden image, on chosen hosts");

  targetOptions(
    app
      .command("create <name>")
      .description("define an app (validated as a whole; every problem is listed with its path)")
      .option("--file <path>", "app file (YAML or JSON); flags override its fields")
      .option("--image <line>", "image line it runs on, e.g. php")
      .option("--code <line>", "code line whose version is mounted read-only in the container (gild code)")
      .option("--code-mount <path>", "where the code appears inside the container (default /srv/code)")
      .option("--hosts <names>", "host names or label selectors (role=web), comma separated", collect)
      .option(
        "--cmd <command>",
        "the container's command (a shell string; PID 1 must handle SIGTERM: use exec)",
      )
      .option("--env <KEY=VALUE>", "environment (repeatable)", collect)
      .option(
        "--data <path>",
        "mount point of the app's persistent data dir inside the container, e.g. /srv/app",
      )
      .option("--port <port>", "the port it serves (shown in listings)")
      .option("--health <probe>", "http://127.0.0.1:8080/healthz | tcp://127.0.0.1:8080 | exec:<command>")
      .option("--health-interval <duration>", "probe interval (default 1s, at most 1h)")
      .option("--health-timeout <duration>", "probe timeout (default 1s, at most 1h)")
      .option("--health-initial-delay <duration>", "wait before the first probe (default 0s, at most 1h)")
      .option(
        "--min-healthy <duration>",
        "healthy only after probes held good this long (default 3s, at most 1d)",
      )
      .option("--stop-timeout <duration>", "SIGTERM, then kill after this long (default 10s, at most 1h)")
      .option(
        "--healthy-deadline <duration>",
        "a new generation must be healthy within this, else local rollback (default 2m, at most 7d)",
      )
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: Record<string, unknown> & CommandFlags) => {
    const render = ctx.renderer(flags);
    const created = await ctx.client(flags).call("POST /v1/apps", { body: appSpecFromFlags(name, flags) });
    render.result(
      created,
      () =>
        `created app ${created.spec.name} on ${created.spec.image}${created.spec.code ? ` with code ${created.spec.code} at ${created.spec.codeMount}` : ""}; hosts now: ${created.targets.join(", ") || "none"}\ndeploy it with: gild app deploy ${created.spec.name} (the latest versions) or --image ${created.spec.image}@<version>`,
    );
  });

  targetOptions(
    app
      .command("ls")
      .description("apps with per-host generation, image version, state and health")
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const { apps } = await ctx.client(flags).call("GET /v1/apps");
    render.result(apps, () => appTable(apps));
  });

  targetOptions(
    app.command("show <name>").description("an app's spec and instances").option("--json", "print JSON"),
  ).action(async (name: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const view = await ctx.client(flags).call("GET /v1/apps/:name", { params: { name } });
    render.result(
      view,
      () =>
        `${JSON.stringify(view.spec, null, 2)}\n\ntargets: ${view.targets.join(", ") || "none"}\n\n${appTable([view])}`,
    );
  });

  targetOptions(
    app
      .command("deploy <name>")
      .description(
        "switch an app to an image and/or code version on its hosts (pull, health gate, local rollback): what a rollout does per host",
      )
      .option(
        "--image <image>",
        "image version to run, e.g. php@2 (a line alone: its latest); without --image and --code: the latest of both",
      )
      .option(
        "--code <code>",
        "code version to mount, e.g. blog@7 (a line alone: its latest); the image stays",
      )
      .option("--hosts <names>", "only these hosts (names or label selectors)", collect)
      .option("--host <name>", "only this host (repeatable)", collect)
      .option("--json", "print the per-host results as JSON"),
  ).action(
    async (
      name: string,
      flags: CommandFlags & { image?: string; code?: string; hosts?: string[]; host?: string[] },
    ) => {
      const render = ctx.renderer(flags);
      const hosts = [...splitList(flags.hosts), ...splitList(flags.host)];
      await followDeploy(
        render,
        ctx.client(flags).stream("POST /v1/apps/:name/deploy", {
          params: { name },
          body: {
            ...(flags.image ? { image: flags.image } : {}),
            ...(flags.code ? { code: flags.code } : {}),
            ...(hosts.length > 0 ? { hosts } : {}),
          },
        }),
      );
    },
  );

  const hostsCommand = app
    .command("hosts")
    .description("add hosts to an app (they get its image, code and an empty data dir) or take them off");
  targetOptions(
    hostsCommand
      .command("add <name> <hosts...>")
      .description(
        "add hosts (names or label selectors) to an app and deploy it there at the versions it runs, through the health gate",
      )
      .option("--json", "print the per-host results as JSON"),
  ).action(async (name: string, hosts: string[], flags: CommandFlags) => {
    await followDeploy(
      ctx.renderer(flags),
      ctx.client(flags).stream("POST /v1/apps/:name/hosts", {
        params: { name },
        body: { add: splitList(hosts) },
      }),
      ["done", "removed"],
    );
  });
  targetOptions(
    hostsCommand
      .command("rm <name> <hosts...>")
      .description("take hosts (as the app names them) off an app: its containers there are removed")
      .option("--purge-data", "also delete data/<app> on those hosts (irreversible)")
      .option("--json", "print the per-host results as JSON"),
  ).action(async (name: string, hosts: string[], flags: CommandFlags & { purgeData?: boolean }) => {
    await followDeploy(
      ctx.renderer(flags),
      ctx.client(flags).stream("POST /v1/apps/:name/hosts", {
        params: { name },
        body: { remove: splitList(hosts), ...(flags.purgeData ? { purgeData: true } : {}) },
      }),
      ["done", "removed"],
    );
  });

  targetOptions(
    app
      .command("rollback <name>")
      .description("switch back to each host's previous generation (already on the host: no download)")
      .option("--hosts <names>", "only these hosts", collect)
      .option("--host <name>", "only this host (repeatable)", collect)
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: CommandFlags & { hosts?: string[]; host?: string[] }) => {
    const render = ctx.renderer(flags);
    const hosts = [...splitList(flags.hosts), ...splitList(flags.host)];
    await followDeploy(
      render,
      ctx.client(flags).stream("POST /v1/apps/:name/rollback", {
        params: { name },
        body: hosts.length > 0 ? { hosts } : {},
      }),
    );
  });

  targetOptions(
    app
      .command("logs <name>")
      .description("an app's container output on one host (kept per generation)")
      .requiredOption("--host <name>", "the host")
      .option("--generation <n>", "a past generation (default: the current one)")
      .option("--tail <bytes>", "show the last this many bytes (default 16384)")
      .option("-f, --follow", "keep printing new output until interrupted"),
  ).action(
    async (
      name: string,
      flags: CommandFlags & { host: string; generation?: string; tail?: string; follow?: boolean },
    ) => {
      const client = ctx.client(flags);
      const generation = flags.generation ? parsePositiveInt(flags.generation, "--generation") : undefined;
      const tail = flags.tail ? parsePositiveInt(flags.tail, "--tail") : 16_384;
      const read = (offset: number) =>
        client.call("GET /v1/apps/:name/logs", {
          params: { name },
          query: {
            host: flags.host,
            offset: String(offset),
            maxBytes: "262144",
            ...(generation ? { generation: String(generation) } : {}),
          },
        });
      let chunk = await read(-tail);
      process.stdout.write(chunk.data);
      if (!flags.follow) return;
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      while (!stop.signal.aborted) {
        await delay(1000, undefined, { signal: stop.signal }).catch(() => undefined);
        if (stop.signal.aborted) break;
        chunk = await read(chunk.nextOffset);
        process.stdout.write(chunk.data);
      }
    },
  );

  targetOptions(
    app
      .command("rm <name>")
      .description("stop and remove an app from its hosts, then its definition")
      .option("--purge-data", "also delete data/<app> on every host (irreversible)")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: CommandFlags & { purgeData?: boolean }) => {
    const render = ctx.renderer(flags);
    const removed = await ctx.client(flags).call("DELETE /v1/apps/:name", {
      params: { name },
      ...(flags.purgeData ? { query: { purgeData: "1" } } : {}),
    });
    render.result(
      removed,
      () =>
        `removed ${removed.removed} from ${removed.hosts.map((h) => h.host).join(", ") || "no hosts"}${flags.purgeData ? " (data deleted)" : " (data kept)"}`,
    );
  });
}
