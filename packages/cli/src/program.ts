import { GILD_VERSION } from "@gild/core";
import { Command } from "commander";
import { registerAgentCommands } from "./commands/agent.js";
import { registerAppCommands } from "./commands/app.js";
import { registerAuditCommands } from "./commands/audit.js";
import { registerBackupCommands } from "./commands/backup.js";
import { registerCodeCommands } from "./commands/code.js";
import { registerControllerCommands } from "./commands/controller.js";
import { registerHostUpdateCommands } from "./commands/host-update.js";
import { registerHostCommands } from "./commands/hosts.js";
import { registerImageCommands } from "./commands/image.js";
import { registerRolloutCommands } from "./commands/rollout.js";
import { registerTokenCommands } from "./commands/tokens.js";
import { registerUserCommands } from "./commands/users.js";
import type { CliContext } from "./context.js";

/** The whole `gild` command tree. */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command("gild")
    .description("gild: one golden root filesystem, shipped to every server, apps rolled out canary first")
    .version(GILD_VERSION, "-V, --version")
    .showHelpAfterError()
    .exitOverride();
  program.configureHelp({ sortSubcommands: true });
  registerImageCommands(program, ctx);
  registerCodeCommands(program, ctx);
  registerControllerCommands(program, ctx);
  registerAgentCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerUserCommands(program, ctx);
  registerHostCommands(program, ctx);
  registerAppCommands(program, ctx);
  registerRolloutCommands(program, ctx);
  registerHostUpdateCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerBackupCommands(program, ctx);
  return program;
}
