import { GildError } from "@gild/core";
import type { CliEnv } from "./cli-env.js";
import { Renderer, type RenderStreams } from "./render.js";

/** What every command handler gets: the environment, and how to print. */
export interface CliContext {
  env: CliEnv;
  renderer(flags: { json?: boolean }): Renderer;
  /** The pool for local image commands: --pool, else GILD_POOL. */
  poolPath(flag: string | undefined): string;
}

export function createCliContext(env: CliEnv, streams?: RenderStreams): CliContext {
  return {
    env,
    renderer: (flags) => new Renderer({ json: flags.json, streams }),
    poolPath(flag) {
      const pool = flag ?? env.pool;
      if (!pool) {
        throw new GildError("GILD_BAD_REQUEST", "no pool given", {
          hint: "pass --pool PATH (a directory on a btrfs filesystem), or set GILD_POOL",
        });
      }
      return pool;
    },
  };
}
