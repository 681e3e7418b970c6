import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildProgram, createCliContext, readCliEnv } from "@gild/cli";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";

const root = new URL("../../../", import.meta.url).pathname;

function* sources(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name === "gen" || name === "test") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (/\.ts$/.test(name)) yield path;
  }
}

/** Every `gild <command> [<sub>]` that a hint, a message or the error docs tell an operator to run. */
function mentioned(): Array<{ where: string; words: string[] }> {
  const out: Array<{ where: string; words: string[] }> = [];
  const files = [...sources(join(root, "packages")), join(root, "docs", "errors.md")];
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/`gild ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?/g)) {
      out.push({
        where: file.slice(root.length),
        words: [match[1] as string, match[2] ?? ""].filter(Boolean),
      });
    }
  }
  return out;
}

/** Whether the CLI has the command the words name (the second word may be an argument instead). */
function exists(program: Command, words: string[]): boolean {
  const top = program.commands.find((c) => c.name() === words[0]);
  if (!top) return false;
  if (words.length < 2 || top.commands.length === 0) return true;
  return top.commands.some((c) => c.name() === words[1]) || top.registeredArguments.length > 0;
}

describe("commands named in hints and messages", () => {
  it("all exist (a hint once named `gild app list`, which does not)", () => {
    const program = buildProgram(createCliContext(readCliEnv({})));
    const missing = mentioned()
      .filter((m) => !exists(program, m.words))
      .map((m) => `${m.where}: gild ${m.words.join(" ")}`);
    expect(missing).toEqual([]);
    expect(mentioned().length).toBeGreaterThan(10);
  });
});
