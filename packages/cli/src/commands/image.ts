import type { RouteStream } from "@gild/api-client";
import { formatBytes, type ImageOrigin, parseImageRef, type SerializedError } from "@gild/core";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { followHosts } from "../follow-hosts.js";
import { when } from "../format-time.js";
import {
  createLocalImage,
  describeOrigin,
  type ImageSource,
  imageSourceFromFlags,
  listLocalImages,
  removeLocalImage,
  updateLocalImage,
} from "../local-images.js";
import { formatProgress, formatTable, type Renderer } from "../render.js";
import {
  type CommandFlags,
  collect,
  parseKeyValues,
  parsePositiveInt,
  splitList,
  targetOptions,
} from "./options.js";

/** An image version as either a local pool or the controller lists it. */
export interface ImageRow {
  line: string;
  version: number;
  status?: string;
  sizeBytes: number | null;
  parent: number | null;
  createdAt: string | number;
  createdBy: string | null;
  origin: ImageOrigin | null;
  hosts?: string[];
}

type Flags = CommandFlags & { pool?: string };

/** Human table of image versions. */
export function imageTable(images: readonly ImageRow[]): string {
  if (images.length === 0) return "no images";
  const withStatus = images.some((i) => i.status !== undefined);
  const withHosts = images.some((i) => i.hosts !== undefined);
  return formatTable(images, [
    { header: "IMAGE", value: (i) => `${i.line}@${i.version}` },
    ...(withStatus ? [{ header: "STATUS", value: (i: ImageRow) => i.status }] : []),
    {
      header: "SIZE",
      value: (i) => (i.sizeBytes === null ? "-" : formatBytes(i.sizeBytes)),
      align: "right" as const,
    },
    { header: "PARENT", value: (i) => (i.parent === null ? "-" : `@${i.parent}`) },
    {
      header: "CREATED",
      value: (i) => when(typeof i.createdAt === "number" ? i.createdAt : Date.parse(i.createdAt)),
    },
    { header: "BY", value: (i) => i.createdBy ?? "-" },
    ...(withHosts ? [{ header: "ON HOSTS", value: (i: ImageRow) => i.hosts?.join(",") || "-" }] : []),
    { header: "FROM", value: (i) => describeOrigin(i.origin) },
  ]);
}

export function describeVersion(image: ImageRow): string {
  return `created ${image.line}@${image.version}${image.sizeBytes === null ? "" : ` (${formatBytes(image.sizeBytes)})`}`;
}

/** Run an NDJSON image build on the controller, echoing its output lines. */
export async function remoteBuild(
  render: Renderer,
  stream: RouteStream<"POST /v1/images" | "POST /v1/images/:line/update">,
): Promise<ImageRow> {
  for (;;) {
    const next = await stream.next();
    if (next.done) return next.value;
    if (next.value.type === "output") render.output(String(next.value.line));
  }
}

interface PushEvent {
  host: string;
  state: string;
  progress?: { bytesDone: number; bytesTotal: number; rateBytesPerSecond: number; phase: string };
  artifact?: { sizeBytes: number; parentVersion: number; streamVersion: number };
  error?: SerializedError;
  resumedFrom?: number;
  bytesFromPeers?: number;
  badPeers?: Array<{ host: string; reason: string }>;
}

/** ", 80 MiB from peers; bad peers: web-3 (chunk 4 ...)" when the host had help or met liars. */
function peerNote(e: PushEvent): string {
  const from = e.bytesFromPeers ? `, ${formatBytes(e.bytesFromPeers)} from peers` : "";
  const bad = (e.badPeers ?? []).map((b) => `${b.host} (${b.reason})`).join(", ");
  return `${from}${bad ? `; bad peers: ${bad}` : ""}`;
}

function pushLine(e: PushEvent): string {
  const kind = e.artifact
    ? e.artifact.parentVersion > 0
      ? `delta from @${e.artifact.parentVersion}`
      : "full"
    : "";
  switch (e.state) {
    case "transferring":
      return e.progress
        ? `${e.host.padEnd(16)} ${formatProgress(e.progress.bytesDone, e.progress.bytesTotal, e.progress.rateBytesPerSecond)} ${e.progress.phase}`
        : `${e.host.padEnd(16)} starting (${kind}, ${formatBytes(e.artifact?.sizeBytes ?? 0)})`;
    case "done":
      return `${e.host.padEnd(16)} done: ${kind}, ${formatBytes(e.artifact?.sizeBytes ?? 0)}${e.resumedFrom ? `, resumed at ${formatBytes(e.resumedFrom)}` : ""}${peerNote(e)}`;
    case "present":
      return `${e.host.padEnd(16)} already there`;
    case "failed":
      return `${e.host.padEnd(16)} FAILED: ${e.error?.message ?? "unknown"} [${e.error?.code ?? "?"}]`;
    default:
      return `${e.host.padEnd(16)} ${e.state}`;
  }
}

/** `gild image ...`: on a local pool with --pool (or GILD_POOL), else on the controller. */
export function registerImageCommands(program: Command, ctx: CliContext): void {
  const image = program
    .command("image")
    .description("golden image versions: create, update, list, push, remove");

  targetOptions(
    image
      .command("create <line>")
      .description("make the next version of an image line from a directory tree or debootstrap")
      .option("--from-dir <dir>", "copy this directory tree (reflinks where possible)")
      .option("--debootstrap <suite>", "build a Debian root with debootstrap (e.g. bookworm)")
      .option("--include <packages>", "with --debootstrap: extra packages, comma separated", collect)
      .option(
        "--mirror <url>",
        "with --debootstrap: Debian mirror (default: the one apt on this machine uses)",
      )
      .option("--cache-dir <dir>", "with --debootstrap: keep downloaded packages here between builds")
      .option("--pool <path>", "work on this local btrfs pool instead of the controller (env GILD_POOL)")
      .option("--json", "print the new version as JSON"),
  ).action(
    async (
      line: string,
      flags: Flags & {
        fromDir?: string;
        debootstrap?: string;
        include?: string[];
        mirror?: string;
        cacheDir?: string;
      },
    ) => {
      const render = ctx.renderer(flags);
      const source: ImageSource = imageSourceFromFlags({ ...flags, include: splitList(flags.include) });
      render.note(
        `creating the next version of ${line} from ${source.kind === "dir" ? source.path : `debootstrap ${source.suite}`} ...`,
      );
      const created: ImageRow = ctx.isLocal(flags)
        ? await createLocalImage(line, source, {
            pool: ctx.poolPath(flags.pool),
            actor: ctx.env.actor,
            onOutput: (l) => render.output(l),
          })
        : await remoteBuild(render, ctx.client(flags).stream("POST /v1/images", { body: { line, source } }));
      render.result(created, () => describeVersion(created));
    },
  );

  targetOptions(
    image
      .command("update <line> <command...>")
      .description(
        "make the next version by running a command inside the latest one, e.g. -- apt-get -y upgrade",
      )
      .option("--from <version>", "start from this version instead of the latest")
      .option("--env <KEY=VALUE>", "environment for the command (repeatable)", collect)
      .option("--pool <path>", "work on this local btrfs pool instead of the controller (env GILD_POOL)")
      .option("--json", "print the new version as JSON"),
  ).action(async (line: string, command: string[], flags: Flags & { from?: string; env?: string[] }) => {
    const render = ctx.renderer(flags);
    const from = flags.from === undefined ? undefined : parsePositiveInt(flags.from, "--from");
    const env = parseKeyValues(flags.env, "--env");
    render.note(`updating ${line}: ${command.join(" ")}`);
    const created: ImageRow = ctx.isLocal(flags)
      ? await updateLocalImage(line, command, {
          pool: ctx.poolPath(flags.pool),
          actor: ctx.env.actor,
          ...(from === undefined ? {} : { from }),
          env,
          onOutput: (l) => render.output(l),
        })
      : await remoteBuild(
          render,
          ctx.client(flags).stream("POST /v1/images/:line/update", {
            params: { line },
            body: { command, env, ...(from === undefined ? {} : { from }) },
          }),
        );
    render.result(created, () => describeVersion(created));
  });

  targetOptions(
    image
      .command("ls [line]")
      .description("list image versions: status, size, parent, creation, what made them")
      .option("--hosts", "also show which hosts hold each version (controller only)")
      .option("--pool <path>", "list a local btrfs pool instead of the controller (env GILD_POOL)")
      .option("--json", "print JSON"),
  ).action(async (line: string | undefined, flags: Flags & { hosts?: boolean }) => {
    const render = ctx.renderer(flags);
    let images: ImageRow[];
    if (ctx.isLocal(flags)) images = await listLocalImages(ctx.poolPath(flags.pool), line);
    else {
      const query = {
        ...(line ? { line } : {}),
        ...(flags.hosts ? { hosts: "1" as const } : {}),
        kind: "os" as const,
      };
      images = (await ctx.client(flags).call("GET /v1/images", { query })).images;
    }
    render.result(images, () => imageTable(images));
  });

  targetOptions(
    image
      .command("rm <image>")
      .description(
        "remove one version, e.g. php@2, from the controller (refused while an app uses it) or, with --hosts, from hosts",
      )
      .option(
        "--hosts <names>",
        "remove it from these hosts' pools instead (names or label selectors)",
        collect,
      )
      .option("--pool <path>", "remove from a local btrfs pool instead of the controller (env GILD_POOL)")
      .option("--json", "print JSON"),
  ).action(async (ref: string, flags: Flags & { hosts?: string[] }) => {
    const render = ctx.renderer(flags);
    const { line, version } = parseImageRef(ref);
    if (flags.hosts) {
      const { hosts } = await ctx.client(flags).call("POST /v1/images/:line/:version/evict", {
        params: { line, version: String(version) },
        body: { hosts: splitList(flags.hosts) },
      });
      render.result(hosts, () =>
        hosts
          .map(
            (h) =>
              `${h.host.padEnd(16)} ${h.state}${h.error ? `: ${h.error.message} [${h.error.code}]` : ""}`,
          )
          .join("\n"),
      );
      if (hosts.some((h) => h.state === "failed")) process.exitCode = 1;
      return;
    }
    let removed: { removed: string };
    if (ctx.isLocal(flags)) removed = await removeLocalImage(ctx.poolPath(flags.pool), ref);
    else
      removed = await ctx
        .client(flags)
        .call("DELETE /v1/images/:line/:version", { params: { line, version: String(version) } });
    render.result(removed, () => `removed ${removed.removed}`);
  });

  targetOptions(
    image
      .command("push <image>")
      .description("send a version to hosts (incremental against what each holds) with live progress")
      .option("--hosts <names>", "host names or label selectors (role=web), comma separated", collect)
      .option("--all", "every host")
      .option("--json", "print the final per-host results as JSON"),
  ).action(async (ref: string, flags: Flags & { hosts?: string[]; all?: boolean }) => {
    const render = ctx.renderer(flags);
    const { line, version } = parseImageRef(ref);
    const hosts = splitList(flags.hosts);
    const stream = ctx.client(flags).stream("POST /v1/images/:line/:version/push", {
      params: { line, version: String(version) },
      body: flags.all ? { all: true } : { hosts },
    });
    const transferring = (e: PushEvent) => e.state === "transferring";
    const result = await followHosts(render, stream, {
      line: pushLine,
      isLive: transferring,
      quiet: transferring,
    });
    const failed = result.hosts.filter((h) => h.state === "failed");
    render.result(result.hosts, () =>
      [
        ...result.hosts.map(pushLine),
        "",
        failed.length === 0
          ? `${line}@${version} is on ${result.hosts.length} host(s)`
          : `${failed.length} host(s) failed`,
      ].join("\n"),
    );
    if (failed.length > 0) process.exitCode = 1;
  });
}
