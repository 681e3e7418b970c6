import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { when } from "../format-time.js";
import { formatTable } from "../render.js";
import { type CommandFlags, targetOptions } from "./options.js";

/** `gild token create|ls|rm`: one-time join tokens. */
export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command("token").description("one-time join tokens for new hosts");
  targetOptions(
    token
      .command("create")
      .description("print a one-time join token (it pins the controller's CA)")
      .option("--ttl <duration>", "how long it stays valid (default 1h, at most 30d)")
      .option("--json", "print JSON"),
  ).action(async (flags: { ttl?: string } & CommandFlags) => {
    const render = ctx.renderer(flags);
    const created = await ctx
      .client(flags)
      .call("POST /v1/tokens", { body: flags.ttl ? { ttl: flags.ttl } : {} });
    render.result(created, () =>
      [
        created.token,
        "",
        `valid until ${when(created.expiresAt)}, once. On the new server:`,
        `  gild agent join ${created.controllerUrl} ${created.token} --name <host-name>`,
      ].join("\n"),
    );
  });
  targetOptions(
    token
      .command("ls")
      .description("list join tokens (secrets are never shown again)")
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const { tokens } = await ctx.client(flags).call("GET /v1/tokens");
    render.result(tokens, () =>
      tokens.length === 0
        ? "no tokens"
        : formatTable(tokens, [
            { header: "ID", value: (t) => t.id },
            { header: "CREATED", value: (t) => when(t.createdAt) },
            { header: "EXPIRES", value: (t) => when(t.expiresAt) },
            { header: "BY", value: (t) => t.createdBy },
            {
              header: "USED",
              value: (t) =>
                t.usedAt
                  ? `${when(t.usedAt)} by ${t.usedBy}`
                  : t.expiresAt < Date.now()
                    ? "expired"
                    : "unused",
            },
          ]),
    );
  });
  targetOptions(
    token.command("rm <id>").description("revoke an unused token").option("--json", "print JSON"),
  ).action(async (id: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const removed = await ctx.client(flags).call("DELETE /v1/tokens/:id", { params: { id } });
    render.result(removed, () => `revoked token ${removed.removed}`);
  });
}
