import { GildError } from "@gild/core";
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
