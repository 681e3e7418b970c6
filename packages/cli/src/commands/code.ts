import { parseImageRef } from "@gild/core";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { describeVersion, type ImageRow, imageTable, remoteBuild } from "./image.js";
import { type CommandFlags, targetOptions } from "./options.js";

/**
 * `gild code ...`: app code as versioned read-only trees on the controller. A code line is a line like
 * an image line (same store, signed artifacts, deltas, verification); each version is made from a
 * directory, the next one as a snapshot of the last with only the changes written, so a one-file change
 * ships as a tiny delta. Apps mount a version read-only (`gild app create --code LINE`).
 */
export function registerCodeCommands(program: Command, ctx: CliContext): void {
  const code = program.command("code").description("app code versions: create, update, list, remove");

  const build = (verb: "create" | "update", what: string) =>
    targetOptions(
      code
        .command(`${verb} <line>`)
        .description(what)
        .requiredOption("--from-dir <dir>", "the app's files: a directory on the controller's machine")
        .option("--json", "print the new version as JSON"),
    ).action(async (line: string, flags: CommandFlags & { fromDir: string }) => {
      const render = ctx.renderer(flags);
      render.note(`making the next version of code line ${line} from ${flags.fromDir} ...`);
      const created: ImageRow = await remoteBuild(
        render,
        ctx.client(flags).stream("POST /v1/images", {
          body: { line, kind: "code", source: { kind: "dir", path: flags.fromDir } },
        }),
      );
      render.result(created, () => describeVersion(created));
    });
  build("create", "make a code line's first version (line@1) from a directory");
  build("update", "make the next version of a code line from a directory: only the changes are written");

  targetOptions(
    code
      .command("ls [line]")
      .description("list code versions: status, size, parent, creation")
      .option("--hosts", "also show which hosts hold each version")
      .option("--json", "print JSON"),
  ).action(async (line: string | undefined, flags: CommandFlags & { hosts?: boolean }) => {
    const render = ctx.renderer(flags);
    const query = {
      ...(line ? { line } : {}),
      ...(flags.hosts ? { hosts: "1" as const } : {}),
      kind: "code" as const,
    };
    const versions = (await ctx.client(flags).call("GET /v1/images", { query })).images;
    render.result(versions, () => (versions.length === 0 ? "no code versions" : imageTable(versions)));
  });

  targetOptions(
    code
      .command("rm <version>")
      .description("remove one code version, e.g. blog@2, from the controller (refused while an app uses it)")
      .option("--json", "print JSON"),
  ).action(async (ref: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const { line, version } = parseImageRef(ref);
    const removed = await ctx
      .client(flags)
      .call("DELETE /v1/images/:line/:version", { params: { line, version: String(version) } });
    render.result(removed, () => `removed ${removed.removed}`);
  });
}
