// Writes docs/cli.md from the CLI's own command tree (run after `pnpm build`): every command, argument
// and flag with its help text. packages/cli/test/cli-docs.test.ts fails when the file is not current.
import { writeFileSync } from "node:fs";
import { buildProgram, createCliContext, readCliEnv } from "../packages/cli/dist/index.js";

function usageOf(cmd) {
  const names = [];
  for (let c = cmd; c; c = c.parent) names.unshift(c.name());
  return `${names.join(" ")} ${cmd.usage()}`.trim();
}

function section(cmd, depth, out) {
  if (cmd.name() === "help") return;
  const subs = cmd.commands.filter((c) => c.name() !== "help");
  if (depth > 0) {
    out.push(`${"#".repeat(Math.min(depth + 1, 4))} \`${usageOf(cmd).replace(/^gild /, "gild ")}\``, "");
    if (cmd.description()) out.push(cmd.description(), "");
    const options = cmd.options.filter((o) => o.long !== "--help");
    if (options.length > 0 && subs.length === 0) {
      out.push("| Flag | Meaning |", "| --- | --- |");
      for (const o of options) out.push(`| \`${o.flags}\` | ${o.description.replace(/\|/g, "\\|")} |`);
      out.push("");
    }
  }
  for (const sub of [...subs].sort((a, b) => a.name().localeCompare(b.name()))) section(sub, depth + 1, out);
}

export function renderCliDocs() {
  const program = buildProgram(createCliContext(readCliEnv({})));
  const out = [
    "# gild command reference",
    "",
    "Generated from the CLI's command tree by `pnpm docs:cli`; `gild <command> --help` prints the same.",
    "Every listing takes `--json`. Commands that talk to the controller take `--controller URL` and",
    "`--ca FILE` (or GILD_CONTROLLER, GILD_CA, GILD_TOKEN; by default the controller on this machine,",
    "found through /var/lib/gild/controller/cli.json or GILD_CONTROLLER_DIR). Exit status: 0 success,",
    "1 failure (the message and a hint on stderr, with the error code of docs/errors.md), 2 usage error.",
    "",
  ];
  section(program, 0, out);
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL("../docs/cli.md", import.meta.url), renderCliDocs());
}
