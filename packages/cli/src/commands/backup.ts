import { formatBytes } from "@gild/core";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { type CommandFlags, targetOptions } from "./options.js";

/** `gild backup`: a consistent copy of the controller's store, made while it runs. */
export function registerBackupCommands(program: Command, ctx: CliContext): void {
  targetOptions(
    program
      .command("backup")
      .description(
        "have the controller write a consistent copy of its SQLite store to backups/ in its data directory",
      )
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const backup = await ctx.client(flags).call("POST /v1/backups");
    render.result(backup, () =>
      [
        `${backup.path} (${formatBytes(backup.bytes)}), on the controller's server.`,
        "Copy it off that server. Restoring it: docs/deployment.md, Backups.",
      ].join("\n"),
    );
  });
}
