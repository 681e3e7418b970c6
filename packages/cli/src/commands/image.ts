import { formatBytes, type ImageVersionInfo } from "@gild/core";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import {
  createLocalImage,
  describeOrigin,
  imageSourceFromFlags,
  listLocalImages,
  removeLocalImage,
  updateLocalImage,
} from "../local-images.js";
import { formatTable } from "../render.js";
import { collect, parseKeyValues, parsePositiveInt, splitList } from "./options.js";

interface PoolFlags {
  pool?: string;
  json?: boolean;
}

/** Human table of image versions. */
export function imageTable(images: readonly ImageVersionInfo[]): string {
  if (images.length === 0) return "no images";
  return formatTable(images, [
    { header: "IMAGE", value: (i) => `${i.line}@${i.version}` },
    { header: "SIZE", value: (i) => (i.sizeBytes === null ? "-" : formatBytes(i.sizeBytes)), align: "right" },
    { header: "PARENT", value: (i) => (i.parent === null ? "-" : `@${i.parent}`) },
    { header: "CREATED", value: (i) => i.createdAt.replace("T", " ").slice(0, 19) },
    { header: "BY", value: (i) => i.createdBy ?? "-" },
    { header: "FROM", value: (i) => describeOrigin(i.origin) },
  ]);
}

function describeVersion(image: ImageVersionInfo): string {
  return `created ${image.line}@${image.version}${image.sizeBytes === null ? "" : ` (${formatBytes(image.sizeBytes)})`}`;
}

/** `gild image ...`: golden image versions, on a local pool (--pool). */
export function registerImageCommands(program: Command, ctx: CliContext): void {
  const image = program.command("image").description("golden image versions: create, update, list, remove");

  image
    .command("create <line>")
    .description("make the next version of an image line from a directory tree or debootstrap")
    .option("--from-dir <dir>", "copy this directory tree (reflinks where possible)")
    .option("--debootstrap <suite>", "build a Debian root with debootstrap (e.g. bookworm)")
    .option("--include <packages>", "with --debootstrap: extra packages, comma separated", collect)
    .option("--mirror <url>", "with --debootstrap: Debian mirror (default: the one apt on this machine uses)")
    .option("--cache-dir <dir>", "with --debootstrap: keep downloaded packages here between builds")
    .option("--pool <path>", "the local btrfs pool to create it in (env GILD_POOL)")
    .option("--json", "print the new version as JSON")
    .action(
      async (
        line: string,
        flags: PoolFlags & {
          fromDir?: string;
          debootstrap?: string;
          include?: string[];
          mirror?: string;
          cacheDir?: string;
        },
      ) => {
        const render = ctx.renderer(flags);
        const source = imageSourceFromFlags({ ...flags, include: splitList(flags.include) });
        render.note(
          `creating the next version of ${line} from ${source.kind === "dir" ? source.path : `debootstrap ${source.suite}`} ...`,
        );
        const created = await createLocalImage(line, source, {
          pool: ctx.poolPath(flags.pool),
          actor: ctx.env.actor,
          onOutput: (l) => render.output(l),
        });
        render.result(created, () => describeVersion(created));
      },
    );

  image
    .command("update <line> <command...>")
    .description(
      "make the next version by running a command inside the latest one, e.g. -- apt-get -y upgrade",
    )
    .option("--from <version>", "start from this version instead of the latest")
    .option("--env <KEY=VALUE>", "environment for the command (repeatable)", collect)
    .option("--pool <path>", "the local btrfs pool (env GILD_POOL)")
    .option("--json", "print the new version as JSON")
    .action(async (line: string, command: string[], flags: PoolFlags & { from?: string; env?: string[] }) => {
      const render = ctx.renderer(flags);
      render.note(`updating ${line}: ${command.join(" ")}`);
      const created = await updateLocalImage(line, command, {
        pool: ctx.poolPath(flags.pool),
        actor: ctx.env.actor,
        from: flags.from === undefined ? undefined : parsePositiveInt(flags.from, "--from"),
        env: parseKeyValues(flags.env, "--env"),
        onOutput: (l) => render.output(l),
      });
      render.result(created, () => describeVersion(created));
    });

  image
    .command("ls [line]")
    .description("list image versions with size, parent, creation time and what made them")
    .option("--pool <path>", "the local btrfs pool (env GILD_POOL)")
    .option("--json", "print JSON")
    .action(async (line: string | undefined, flags: PoolFlags) => {
      const render = ctx.renderer(flags);
      const images = await listLocalImages(ctx.poolPath(flags.pool), line);
      render.result(images, () => imageTable(images));
    });

  image
    .command("rm <image>")
    .description("remove one version, e.g. php@2")
    .option("--pool <path>", "the local btrfs pool (env GILD_POOL)")
    .option("--json", "print JSON")
    .action(async (ref: string, flags: PoolFlags) => {
      const render = ctx.renderer(flags);
      const removed = await removeLocalImage(ctx.poolPath(flags.pool), ref);
      render.result(removed, () => `removed ${removed.removed}`);
    });
}
