import { existsSync } from "node:fs";
import { join } from "node:path";
import type { JsonRoutes } from "@gild/api-client";
import { watchJob } from "./rollouts.js";
import type { Fleet } from "./types.js";

/** A host update as `gild host-update status --json` prints it: the view, with its events. */
export type HostUpdateStatusView = JsonRoutes["GET /v1/host-updates/:id"]["response"];

/** The environment that makes a fleet's agents stand a restart in for a reboot (docs/configuration.md). */
export const REBOOT_BY_RESTART_ENV = { GILD_TEST_REBOOT: "restart" } as const;

/** `gild host-update status <id>` as JSON. */
export function hostUpdateStatus(fleet: Fleet, id: string): Promise<HostUpdateStatusView> {
  return fleet.gildJson<HostUpdateStatusView>(["host-update", "status", id]);
}

/**
 * `gild host-update status <id> --watch --json`, what a script waiting on a host update sees: its exit
 * code (0 succeeded, 1 otherwise), the final view, and stderr.
 */
export function watchHostUpdate(
  fleet: Fleet,
  id: string,
  timeoutMs = 240_000,
): Promise<{ code: number; view: HostUpdateStatusView; stderr: string }> {
  return watchJob<HostUpdateStatusView>(fleet, "host-update", id, timeoutMs);
}

/**
 * The fleet's stand-in for reboots: agents run with REBOOT_BY_RESTART_ENV exit (status 75) instead of
 * rebooting, leaving `reboot.json` in their state dir; this starts each such agent again, as a booted
 * host's systemd would. An agent that stopped for another reason (no reboot.json) is left alone.
 * Returns how many restarts it made so far, and the function that stops it (and throws the first
 * restart that failed).
 */
export function standInForReboots(fleet: Fleet): { restarts: () => number; stop: () => Promise<void> } {
  let restarts = 0;
  let stopped = false;
  const failures: string[] = [];
  const restarting = new Set<string>();
  const check = () => {
    for (const host of fleet.hosts) {
      if (restarting.has(host.name) || host.pid() !== undefined) continue;
      if (!existsSync(join(host.stateDir, "reboot.json"))) continue;
      restarting.add(host.name);
      restarts += 1;
      void host
        .startAgent()
        .catch(
          (err: unknown) => void failures.push(`${host.name}: restart for its reboot failed: ${String(err)}`),
        )
        .finally(() => restarting.delete(host.name));
    }
  };
  const timer = setInterval(() => {
    if (!stopped) check();
  }, 200);
  return {
    restarts: () => restarts,
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (failures.length > 0) throw new Error(failures.join("; "));
    },
  };
}
