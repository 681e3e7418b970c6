import { readFileSync } from "node:fs";
import { join } from "node:path";
import { findRepoRoot } from "./fleet/repo-root.js";

/** A unit file's sections, each a list of its Key=Value lines in order. */
export type Unit = Map<string, Array<[string, string]>>;

/**
 * A strict reader of systemd unit syntax (systemd.syntax(7)): comments, [Section] headers and
 * Key=Value lines only; no continuation lines (gild's units do not use them).
 */
export function parseUnit(text: string): Unit {
  const sections: Unit = new Map();
  let current: Array<[string, string]> | undefined;
  text.split("\n").forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith(";")) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(trimmed);
    if (header) {
      current = [];
      sections.set(header[1] as string, current);
      return;
    }
    const pair = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(trimmed);
    if (!pair || !current) throw new Error(`line ${index + 1} is not unit syntax: ${line}`);
    if (trimmed.endsWith("\\")) throw new Error(`line ${index + 1}: continuation lines are not expected`);
    current.push([pair[1] as string, pair[2] as string]);
  });
  return sections;
}

/** Every value of a key in a section, in order. */
export function unitValues(unit: Unit, section: string, key: string): string[] {
  return (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

/** The one value of a key in a section (undefined when unset); set twice is an error. */
export function unitValue(unit: Unit, section: string, key: string): string | undefined {
  const all = unitValues(unit, section, key);
  if (all.length > 1) throw new Error(`${key} is set ${all.length} times in [${section}]`);
  return all[0];
}

/**
 * The variables a unit's `Environment=` lines give its service, later lines winning as in systemd.
 * Only unquoted NAME=value words are read (what gild's units use); a quoted one is an error here
 * rather than a silent misreading.
 */
export function unitEnvironment(unit: Unit): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unitValues(unit, "Service", "Environment")) {
    for (const word of line.split(/\s+/).filter((w) => w !== "")) {
      const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'\\]*)$/.exec(word);
      if (!assignment) throw new Error(`Environment=${line}: "${word}" is not an unquoted NAME=value`);
      env[assignment[1] as string] = assignment[2] as string;
    }
  }
  return env;
}

/**
 * The environment gild-controller.service gives the controller. Harnesses that start a controller
 * (the fleet, the benchmarks) add it, so that they run and measure it as a server does.
 */
export function controllerUnitEnvironment(): Record<string, string> {
  const path = join(findRepoRoot(), "deploy", "systemd", "gild-controller.service");
  return unitEnvironment(parseUnit(readFileSync(path, "utf8")));
}
