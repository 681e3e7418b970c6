import type { UserView } from "@gild/api-client";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { when } from "../format-time.js";
import { formatTable } from "../render.js";
import { type CommandFlags, targetOptions } from "./options.js";

const ROLES = "viewer (reads), operator (images, apps, rollouts), admin (also users, hosts, join tokens)";

/** The token, once, and how to use it. */
function tokenLines(user: UserView, token: string): string {
  return [
    token,
    "",
    `the token of ${user.name} (${user.role}), shown this once; ${user.expiresAt ? `valid until ${when(user.expiresAt)}` : "it does not expire"}.`,
    "Use it as GILD_TOKEN (with GILD_CONTROLLER and GILD_CA) or to sign in to the dashboard.",
  ].join("\n");
}

/** `gild user add|ls|rm|token`: named operators with roles (admin only). */
export function registerUserCommands(program: Command, ctx: CliContext): void {
  const user = program.command("user").description(`operators with roles: ${ROLES}`);
  targetOptions(
    user
      .command("add <name>")
      .description("add an operator and print its token once (stored hashed)")
      .requiredOption("--role <role>", "viewer|operator|admin")
      .option("--expires <duration>", "the token stops working after this, e.g. 90d (default never)")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: { role: string; expires?: string } & CommandFlags) => {
    const render = ctx.renderer(flags);
    const created = await ctx.client(flags).call("POST /v1/users", {
      body: {
        name,
        role: flags.role as UserView["role"],
        ...(flags.expires ? { expires: flags.expires } : {}),
      },
    });
    render.result(created, () => tokenLines(created.user, created.token));
  });
  targetOptions(
    user
      .command("ls")
      .description("list operators (tokens are never shown again)")
      .option("--json", "print JSON"),
  ).action(async (flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const { users } = await ctx.client(flags).call("GET /v1/users");
    render.result(users, () =>
      users.length === 0
        ? "no users (the bootstrap admin token works as admin)"
        : formatTable(users, [
            { header: "NAME", value: (u) => u.name },
            { header: "ROLE", value: (u) => u.role },
            { header: "CREATED", value: (u) => `${when(u.createdAt)} by ${u.createdBy ?? "?"}` },
            { header: "TOKEN FROM", value: (u) => when(u.tokenCreatedAt) },
            {
              header: "EXPIRES",
              value: (u) =>
                u.expiresAt === null ? "never" : u.expiresAt < Date.now() ? "expired" : when(u.expiresAt),
            },
          ]),
    );
  });
  targetOptions(
    user
      .command("token <name>")
      .description("give an operator a new token (the old one stops working at once) and print it once")
      .requiredOption("--rotate", "required: say that the old token is to end")
      .option("--expires <duration>", "the new token stops working after this (default never)")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: { expires?: string } & CommandFlags) => {
    const render = ctx.renderer(flags);
    const rotated = await ctx.client(flags).call("POST /v1/users/:name/token", {
      params: { name },
      body: flags.expires ? { expires: flags.expires } : {},
    });
    render.result(rotated, () => tokenLines(rotated.user, rotated.token));
  });
  targetOptions(
    user
      .command("rm <name>")
      .description("remove an operator: its token stops working at once")
      .option("--json", "print JSON"),
  ).action(async (name: string, flags: CommandFlags) => {
    const render = ctx.renderer(flags);
    const removed = await ctx.client(flags).call("DELETE /v1/users/:name", { params: { name } });
    render.result(removed, () => `removed user ${removed.removed}`);
  });
}
