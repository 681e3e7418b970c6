import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { JsonRoutes, RolloutView } from "@gild/api-client";
import type { Fleet } from "./types.js";

/** A rollout as `gild rollout status --json` prints it: the view, with its events. */
export type RolloutStatusView = RolloutView & {
  events?: JsonRoutes["GET /v1/rollouts/:id"]["response"]["events"];
};

/** `gild rollout status <id>` as JSON. */
export function rolloutStatus(fleet: Fleet, id: string): Promise<RolloutStatusView> {
  return fleet.gildJson<RolloutStatusView>(["rollout", "status", id]);
}

/**
 * `gild rollout status <id> --watch --json`, what a script waiting on a rollout sees: its exit code (0
 * succeeded, 1 failed or rolled back), the final view, and stderr.
 */
export function watchRollout(
  fleet: Fleet,
  id: string,
  timeoutMs = 240_000,
): Promise<{ code: number; view: RolloutStatusView; stderr: string }> {
  return watchJob<RolloutStatusView>(fleet, "rollout", id, timeoutMs);
}

/** `gild <noun> status <id> --watch --json` for a wave job (rollout, host update): exit code, view, stderr. */
export async function watchJob<V>(
  fleet: Fleet,
  noun: "rollout" | "host-update",
  id: string,
  timeoutMs: number,
): Promise<{ code: number; view: V; stderr: string }> {
  const res = await fleet.gild([noun, "status", id, "--watch", "--json"], { timeoutMs });
  if (res.stdout.trim() === "") {
    throw new Error(`gild ${noun} status ${id} --watch printed nothing (exit ${res.code}): ${res.stderr}`);
  }
  return { code: res.code, view: JSON.parse(res.stdout) as V, stderr: res.stderr };
}

/** The kinds of the commands of one job (a rollout, a host update) each host's agent journaled. */
export function journaledKinds(fleet: Fleet, jobId: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const host of fleet.hosts) {
    const dir = join(host.stateDir, "journal");
    out[host.name] = readdirSync(dir)
      .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as { commandId: string; kind: string })
      .filter((e) => e.commandId.startsWith(`${jobId}:`))
      .map((e) => e.kind)
      .sort();
  }
  return out;
}
