import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ControllerTarget } from "@gild/api-client";
import { GildError } from "@gild/core";
import type { CliEnv } from "./cli-env.js";

export interface TargetFlags {
  controller?: string;
  ca?: string;
}

interface CliConfigFile {
  url: string;
  tokenFile: string;
  caFile: string | null;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GildError("GILD_UNAVAILABLE", `cannot read ${what} ${path} (${code})`, {
      hint: code === "EACCES" ? "run gild as root on the controller, or set GILD_TOKEN" : undefined,
    });
  }
}

/**
 * The controller to talk to: flags and environment first (--controller, GILD_CONTROLLER, GILD_TOKEN,
 * --ca/GILD_CA), then what the controller wrote for local use in <GILD_CONTROLLER_DIR>/cli.json.
 */
export function resolveTarget(env: CliEnv, flags: TargetFlags): ControllerTarget {
  let local: CliConfigFile | undefined;
  const localPath = join(env.controllerDir, "cli.json");
  const loadLocal = (): CliConfigFile => {
    if (!local) {
      try {
        local = JSON.parse(readFileSync(localPath, "utf8")) as CliConfigFile;
      } catch (err) {
        throw new GildError(
          "GILD_UNAVAILABLE",
          `no controller to talk to (cannot read ${localPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
          {
            hint: "run gild as root on the controller machine, or pass --controller URL with GILD_TOKEN and --ca (or GILD_CONTROLLER_DIR)",
          },
        );
      }
    }
    return local;
  };
  const url = (flags.controller ?? env.controller ?? loadLocal().url).replace(/\/+$/, "");
  const token = env.token ?? readText(loadLocal().tokenFile, "the admin token").trim();
  let caPem: string | null = null;
  if (url.startsWith("https://")) {
    const caFile = flags.ca ?? env.caFile ?? loadLocal().caFile;
    if (!caFile)
      throw new GildError("GILD_BAD_REQUEST", "an https controller needs its CA", {
        hint: "pass --ca FILE or set GILD_CA",
      });
    caPem = readText(caFile, "the controller CA");
  }
  return { url, token, caPem };
}
