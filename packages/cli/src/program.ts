import { Command } from "commander";
import { registerImageCommands } from "./commands/image.js";
import type { CliContext } from "./context.js";
import { GILD_VERSION } from "./version.js";

/** The whole `gild` command tree. */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command("gild")
    .description("gild: one golden root filesystem, shipped to every server, apps rolled out canary first")
    .version(GILD_VERSION, "-V, --version")
    .showHelpAfterError()
    .exitOverride();
  program.configureHelp({ sortSubcommands: true });
  registerImageCommands(program, ctx);
  return program;
}
