import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { when } from "../format-time.js";
import { formatTable } from "../render.js";
import { type CommandFlags, parsePositiveInt, targetOptions } from "./options.js";

/** `gild audit`: every mutating API call, newest first. */
export function registerAuditCommands(program: Command, ctx: CliContext): void {
  targetOptions(
    program
      .command("audit")
      .description("who changed what, when, and the result (newest first)")
      .option("--limit <n>", "how many entries (default 50)")
      .option("--json", "print JSON"),
  ).action(async (flags: { limit?: string } & CommandFlags) => {
    const render = ctx.renderer(flags);
    const limit = flags.limit ? parsePositiveInt(flags.limit, "--limit") : 50;
    const { entries, refusedSinceStart } = await ctx
      .client(flags)
      .call("GET /v1/audit", { query: { limit: String(limit) } });
    const refused = refusedSinceStart
      ? `\n${refusedSinceStart} request(s) without a valid token refused since the controller started (not listed)`
      : "";
    render.result(
      entries,
      () =>
        (entries.length === 0
          ? "no entries"
          : formatTable(entries, [
              { header: "WHEN", value: (e) => when(e.at) },
              { header: "WHO", value: (e) => e.actor },
              { header: "WHAT", value: (e) => `${e.method} ${e.path}` },
              { header: "RESULT", value: (e) => e.status },
              { header: "SUMMARY", value: (e) => e.summary ?? "" },
            ])) + refused,
    );
  });
}
