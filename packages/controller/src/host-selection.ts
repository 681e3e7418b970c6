import { GildError } from "@gild/core";
import type { HostRecord } from "./store/hosts-repo.js";

/**
 * Hosts chosen by selectors: a name (`web-1`), or a label (`role=web`), which matches every host
 * carrying it. Unknown names are an error; a label that matches nothing is not.
 */
export function selectHosts(all: readonly HostRecord[], selectors: readonly string[]): HostRecord[] {
  const chosen = new Map<string, HostRecord>();
  const unknown: string[] = [];
  for (const selector of selectors) {
    const eq = selector.indexOf("=");
    if (eq > 0) {
      const key = selector.slice(0, eq);
      const value = selector.slice(eq + 1);
      for (const host of all) if (host.labels[key] === value) chosen.set(host.id, host);
      continue;
    }
    const host = all.find((h) => h.name === selector);
    if (host) chosen.set(host.id, host);
    else unknown.push(selector);
  }
  if (unknown.length > 0) {
    throw new GildError("GILD_HOST_NOT_FOUND", `no host named ${unknown.join(", ")}`, {
      hint: "list hosts with `gild hosts`",
    });
  }
  return [...chosen.values()].sort((a, b) => a.name.localeCompare(b.name));
}
