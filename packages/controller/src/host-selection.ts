import { type ErrorCode, type FieldProblem, GildError } from "@gild/core";
import type { HostRecord, HostsRepo } from "./store/hosts-repo.js";

/** The host a name refers to, or GILD_HOST_NOT_FOUND. */
export function hostByName(hosts: HostsRepo, name: string): HostRecord {
  const host = hosts.byName(name);
  if (!host)
    throw new GildError("GILD_HOST_NOT_FOUND", `no host named ${name}`, {
      hint: "list hosts with `gild hosts`",
    });
  return host;
}

/** `role=web` selects by label; anything else names a host. */
export function isLabelSelector(selector: string): boolean {
  return selector.indexOf("=") > 0;
}

/**
 * Hosts chosen by selectors: a name (`web-1`), or a label (`role=web`), which matches every host
 * carrying it. Unknown names are an error (or skipped with `ignoreUnknown`: an app's selector for a
 * host that has left); a label that matches nothing is not.
 */
export function selectHosts(
  all: readonly HostRecord[],
  selectors: readonly string[],
  options: { ignoreUnknown?: boolean } = {},
): HostRecord[] {
  const chosen = new Map<string, HostRecord>();
  const unknown: string[] = [];
  for (const selector of selectors) {
    if (isLabelSelector(selector)) {
      const eq = selector.indexOf("=");
      const key = selector.slice(0, eq);
      const value = selector.slice(eq + 1);
      for (const host of all) if (host.labels[key] === value) chosen.set(host.id, host);
      continue;
    }
    const host = all.find((h) => h.name === selector);
    if (host) chosen.set(host.id, host);
    else unknown.push(selector);
  }
  if (unknown.length > 0 && !options.ignoreUnknown) {
    throw new GildError("GILD_HOST_NOT_FOUND", `no host named ${unknown.join(", ")}`, {
      hint: "list hosts with `gild hosts`",
    });
  }
  return [...chosen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** A request's problem, with the specific code when it has one of its own (a host that does not exist). */
export interface RequestProblem extends FieldProblem {
  code?: ErrorCode;
}

/** A request's list of names (`path`): non-empty strings, at most `max`; a problem otherwise. */
export function stringList(value: unknown, path: string, max: number, problems: RequestProblem[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v.length === 0 || v.length > 256)) {
    problems.push({ path, message: "must be a list of non-empty names" });
    return [];
  }
  if (value.length > max) {
    problems.push({ path, message: `at most ${max} entries` });
    return [];
  }
  return value as string[];
}

/**
 * The hosts a request's selectors (at `path`) choose, as selectHosts does, each unknown name listed as
 * a problem (GILD_HOST_NOT_FOUND) instead of thrown, so a request reports every problem at once.
 */
export function selectRequestHosts(
  all: readonly HostRecord[],
  selectors: readonly string[],
  path: string,
  problems: RequestProblem[],
): HostRecord[] {
  selectors.forEach((selector, i) => {
    if (!isLabelSelector(selector) && !all.some((h) => h.name === selector))
      problems.push({
        path: `${path}[${i}]`,
        message: `no host named ${selector}`,
        code: "GILD_HOST_NOT_FOUND",
      });
  });
  return selectHosts(all, selectors, { ignoreUnknown: true });
}
