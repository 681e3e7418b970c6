import { ControllerClient } from "@gild/api-client";
import { GildError } from "@gild/core";
import type { CliEnv } from "./cli-env.js";
import { resolveTarget, type TargetFlags } from "./client.js";
import { Renderer, type RenderStreams } from "./render.js";

/** What every command handler gets: the environment, how to print, how to reach the controller. */
export interface CliContext {
  env: CliEnv;
  renderer(flags: { json?: boolean }): Renderer;
  /** The pool for local image commands: --pool, else GILD_POOL. */
  poolPath(flag: string | undefined): string;
  /** True when image commands should work on a local pool rather than the controller. */
  isLocal(flags: { pool?: string }): boolean;
  client(flags: TargetFlags): ControllerClient;
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
    isLocal: (flags) => flags.pool !== undefined || env.pool !== undefined,
    client: (flags) => new ControllerClient(resolveTarget(env, flags)),
  };
}
