import { type FieldProblem, GildError } from "@gild/core";
import type { Command } from "commander";
import type { TargetFlags } from "../client.js";

/** What every command that talks to the controller takes: where it is, and --json. */
export type CommandFlags = TargetFlags & { json?: boolean };

/** --controller and --ca, on every command that talks to the controller. */
export function targetOptions(cmd: Command): Command {
  return cmd
    .option("--controller <url>", "controller URL (env GILD_CONTROLLER; default: this machine's controller)")
    .option("--ca <file>", "the controller's CA certificate (env GILD_CA)");
}

/** Collect repeated `--opt a --opt b` values. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Parse repeated K=V flags into a record; every malformed one is reported. */
export function parseKeyValues(values: readonly string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  const problems: FieldProblem[] = [];
  for (const item of values ?? []) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      problems.push({ path: what, message: `"${item}" is not KEY=VALUE` });
      continue;
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  if (problems.length > 0) {
    throw new GildError("GILD_BAD_REQUEST", `invalid ${what}`, { details: { problems } });
  }
  return out;
}

/** Split comma lists given once or repeated: `--hosts a,b --hosts c`. */
export function splitList(values: readonly string[] | string | undefined): string[] {
  const list = typeof values === "string" ? [values] : (values ?? []);
  return list
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}

/** Parse a positive integer flag. */
/**
 * A positive whole number of at most `max` (default 2^32 - 1: generations, versions and counts travel
 * as 32-bit numbers, and a bigger one would be cut, not refused).
 */
export function parsePositiveInt(value: string, what: string, max = 0xffff_ffff): number {
  if (!/^[1-9][0-9]*$/.test(value)) {
    throw new GildError("GILD_BAD_REQUEST", `${what} must be a positive integer, not "${value}"`);
  }
  const n = Number(value);
  if (n > max) throw new GildError("GILD_BAD_REQUEST", `${what} must be at most ${max}, not ${value}`);
  return n;
}
