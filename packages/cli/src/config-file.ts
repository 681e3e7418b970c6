import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { GildError } from "@gild/core";

// yaml is loaded by the commands that read a spec file only, not at every start of the CLI.
const require = createRequire(import.meta.url);
const parseYaml = (text: string): unknown => (require("yaml") as typeof import("yaml")).parse(text);

/** A daemon's --config file: a JSON object (validated as a whole by the daemon's config resolver). */
export function readJsonConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new GildError("GILD_CONFIG_INVALID", `cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new GildError(
      "GILD_CONFIG_INVALID",
      `config file ${path} is not valid JSON: ${(err as Error).message}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new GildError("GILD_CONFIG_INVALID", `config file ${path} must hold a JSON object of settings`);
  }
  return parsed as Record<string, unknown>;
}

/** An app or rollout --file: a YAML (or JSON) mapping; anything else is GILD_INVALID_SPEC. */
export function readSpecFile(path: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, "utf8"));
  } catch (err) {
    throw new GildError("GILD_INVALID_SPEC", `cannot read ${what} file ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new GildError("GILD_INVALID_SPEC", `${what} file ${path} is not a mapping`);
  }
  return { ...(parsed as Record<string, unknown>) };
}
