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
export async function watchRollout(
  fleet: Fleet,
  id: string,
  timeoutMs = 240_000,
): Promise<{ code: number; view: RolloutStatusView; stderr: string }> {
  const res = await fleet.gild(["rollout", "status", id, "--watch", "--json"], { timeoutMs });
  if (res.stdout.trim() === "") {
    throw new Error(`gild rollout status ${id} --watch printed nothing (exit ${res.code}): ${res.stderr}`);
  }
  return { code: res.code, view: JSON.parse(res.stdout) as RolloutStatusView, stderr: res.stderr };
}
