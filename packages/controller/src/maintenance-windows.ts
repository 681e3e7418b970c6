import type { HostWindowView } from "@gild/api-client";
import {
  isWindowOpen,
  type MaintenanceWindow,
  nextWindowOpen,
  parseMaintenanceWindows,
  windowOpenUntil,
} from "@gild/core";
import { isLabelSelector } from "./host-selection.js";
import type { HostRecord } from "./store/hosts-repo.js";
import type { WindowRule } from "./store/windows-repo.js";

/** A host's effective windows and the rules they come from; no rules: always open. */
export interface EffectiveWindows {
  rules: WindowRule[];
  windows: MaintenanceWindow[];
}

function labelMatches(host: Pick<HostRecord, "labels">, selector: string): boolean {
  const eq = selector.indexOf("=");
  return host.labels[selector.slice(0, eq)] === selector.slice(eq + 1);
}

/**
 * The rule that governs a host: its own (by name) when it has one, else every label rule that matches
 * it, joined (a host in role=web and zone=b is open in either's windows). A host's own rule is the
 * exception that overrides its labels'.
 */
export function effectiveWindows(
  host: Pick<HostRecord, "name" | "labels">,
  rules: readonly WindowRule[],
): EffectiveWindows {
  const own = rules.find((r) => !isLabelSelector(r.target) && r.target === host.name);
  const chosen = own ? [own] : rules.filter((r) => isLabelSelector(r.target) && labelMatches(host, r.target));
  // Stored specs were validated when set; parsing again keeps one representation (the text).
  return { rules: chosen, windows: chosen.flatMap((r) => parseMaintenanceWindows(r.spec)) };
}

/** Host id -> effective windows, for the planners' observations (hosts with no rule are left out). */
export function windowsByHost(
  hosts: Iterable<HostRecord>,
  rules: readonly WindowRule[],
): Map<string, MaintenanceWindow[]> {
  const out = new Map<string, MaintenanceWindow[]>();
  if (rules.length === 0) return out;
  for (const host of hosts) {
    const { windows } = effectiveWindows(host, rules);
    if (windows.length > 0) out.set(host.id, windows);
  }
  return out;
}

/** A host's window as views show it. */
export function hostWindowView(
  host: Pick<HostRecord, "name" | "labels">,
  rules: readonly WindowRule[],
  now: number,
): HostWindowView {
  const eff = effectiveWindows(host, rules);
  if (eff.rules.length === 0) return { spec: null, rules: [], open: true, nextOpenAt: null, openUntil: null };
  return {
    spec: eff.rules.map((r) => r.spec).join(", "),
    rules: eff.rules.map((r) => r.target),
    open: isWindowOpen(eff.windows, now),
    nextOpenAt: nextWindowOpen(eff.windows, now),
    openUntil: windowOpenUntil(eff.windows, now),
  };
}

/** Of these hosts, those outside their windows at `now`, by name, with when each window opens. */
export function windowOpenings(
  hostIds: readonly string[],
  windows: ReadonlyMap<string, MaintenanceWindow[]>,
  now: number,
  name: (id: string) => string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of hostIds) {
    const own = windows.get(id);
    if (own !== undefined && !isWindowOpen(own, now)) out[name(id)] = nextWindowOpen(own, now);
  }
  return out;
}
