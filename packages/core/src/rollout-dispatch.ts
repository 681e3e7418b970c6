import { isTerminalRolloutState, type RolloutCommand, type RolloutRecord } from "./rollout-model.js";
import { hostsOfWave, isHostDone } from "./rollout-rules.js";

/**
 * The commands a stored rollout record calls for, host by host, in wave order: the fetch of a fetching
 * host (its current attempt), the switch of a switching host, the rollback of a host rolling back.
 * What the executor sends after every step (each with a deterministic id, so a command already sent is
 * not sent again, also after a restart), and what the planner's `commands` are made from: one rule for
 * both. A paused rollout sends no fetch and no switch, but a host already rolling back is down: its
 * rollback goes on. An ended rollout sends nothing.
 */
export function commandsCalledFor(record: RolloutRecord): RolloutCommand[] {
  if (isTerminalRolloutState(record.state)) return [];
  const paused = record.state === "paused";
  const out: RolloutCommand[] = [];
  for (let wave = 0; wave < record.waves.length; wave++) {
    for (const host of hostsOfWave(record, wave)) {
      if (host.state === "fetching" && host.fetchAttempts > 0 && !paused)
        out.push({ kind: "fetch", hostId: host.hostId, attempt: host.fetchAttempts });
      else if (host.state === "switching" && !paused) out.push({ kind: "switch", hostId: host.hostId });
      else if (host.state === "rolling-back" && !host.rollbackPending)
        out.push({ kind: "rollback", hostId: host.hostId });
    }
  }
  return out;
}

/** A command's identity within its rollout: what its deterministic id is made of. */
export function rolloutCommandKey(command: RolloutCommand): string {
  return command.kind === "fetch"
    ? `${command.hostId}:fetch:${command.attempt}`
    : `${command.hostId}:${command.kind}`;
}

/** What the executor withdraws: not yet taken commands of these kinds, for one host or (null) all. */
export interface Withdrawal {
  hostId: string | null;
  kinds: ReadonlyArray<"fetch" | "switch">;
}

/**
 * Commands no host has taken yet that the record no longer wants: every pending fetch and switch once
 * the rollout has ended, and a failed or rolled-back host's. Rollbacks are never withdrawn: they only
 * take a host off the rollout's version, so one that comes back after the rollout ended converges.
 */
export function withdrawalsFor(record: RolloutRecord): Withdrawal[] {
  const kinds = ["fetch", "switch"] as const;
  if (isTerminalRolloutState(record.state)) return [{ hostId: null, kinds }];
  const out: Withdrawal[] = [];
  // for-in, not Object.values: this runs after every planning step, over every host.
  for (const id in record.hosts) {
    const h = record.hosts[id] as RolloutRecord["hosts"][string];
    if (h.state === "failed" || h.state === "rolled-back" || h.state === "rollback-failed")
      out.push({ hostId: h.hostId, kinds });
  }
  return out;
}

/**
 * Must news of a host (a command's result, an inventory, its link) be planned at once? Not while the
 * rollout goes forward (running, or awaiting promotion) and the host is in a wave after the current
 * one: that news is its prefetch, which the step that starts its wave observes whole anyway (it
 * switches every host whose pull is done, recorded or not). A host of the current wave or an earlier
 * one, a host the record does not know, and every host of a rollout in any other state: at once.
 */
export function isUrgentNews(record: RolloutRecord, hostId: string): boolean {
  if (record.state !== "running" && record.state !== "awaiting-promotion") return true;
  const host = record.hosts[hostId];
  return host === undefined || host.wave <= record.currentWave;
}

/**
 * The hosts whose news may let a running rollout go on: those of its deploying wave not done yet.
 * Once each has news since the last planning step, that step may complete the wave, and it is planned
 * without the delay a flood of reports otherwise gets (JobLoop's `waitingOn`). None in any other state
 * or phase (a bake ends on the planner's clock).
 */
export function hostsHoldingWave(record: RolloutRecord): string[] {
  if (record.state !== "running" || record.phase !== "deploying") return [];
  return hostsOfWave(record, record.currentWave)
    .filter((host) => !isHostDone(host))
    .map((host) => host.hostId);
}
