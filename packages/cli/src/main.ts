import { GildError } from "@gild/core";
import { CommanderError } from "commander";
import { readCliEnv } from "./cli-env.js";
import { createCliContext } from "./context.js";
import { buildProgram } from "./program.js";
import { Renderer } from "./render.js";

/** Run the CLI with argv; resolves to the process exit code (0 ok, 1 failed, 2 usage). */
export async function runCli(argv: readonly string[]): Promise<number> {
  const ctx = createCliContext(readCliEnv());
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "errors" are how commander ends a successful --help.
      return err.exitCode === 0 ? 0 : 2;
    }
    new Renderer({ json: argv.includes("--json") }).error(err);
    return err instanceof GildError && err.code === "GILD_BAD_REQUEST" ? 2 : 1;
  }
}
