import type {
  HostAppObservation,
  HostCommandObservation,
  HostUpdateCommand,
  HostUpdateFleetObservation,
  HostUpdateObservation,
  HostUpdateRecord,
  MaintenanceWindow,
} from "@gild/core";
import type { AgentHub } from "./agent-hub.js";
import type { CommandRecord } from "./store/commands-repo.js";
import type { HostRecord } from "./store/hosts-repo.js";

/** Deterministic command ids: re-issuing after a restart is a no-op, and agents never run one twice. */
export function hostUpdateCommandId(jobId: string, command: HostUpdateCommand): string {
  return `${jobId}:${command.hostId}:${command.kind}`;
}

/** What a host command reports back (its HostCommandResult, as the store keeps it). */
interface HostCommandResultJson {
  exitCode?: number;
  outputTail?: string;
  rebootRequired?: boolean;
}

/** A command row as the planner sees it. */
function observeCommand(row: CommandRecord | undefined): HostCommandObservation | null {
  if (!row) return null;
  const result = (row.result ?? {}) as HostCommandResultJson;
  return {
    state: row.state,
    exitCode: typeof result.exitCode === "number" ? result.exitCode : null,
    rebootRequired: result.rebootRequired === true,
    reason: row.state === "failed" ? (row.error?.message ?? "failed") : null,
  };
}

/** The last lines of a host's command output, for views ("" before it ended). */
export function outputTailOf(row: CommandRecord | undefined): string {
  return ((row?.result ?? {}) as HostCommandResultJson).outputTail ?? "";
}

/**
 * What the executor sees of a job's hosts: liveness, the results of the job's run and reboot commands,
 * every app of each host from its inventory, and each host's maintenance windows. `known` and `rows` are read once per planning step.
 */
export function observeHostUpdate(
  record: HostUpdateRecord,
  deps: {
    hub: AgentHub;
    known: ReadonlyMap<string, HostRecord>;
    rows: readonly CommandRecord[];
    /** Effective maintenance windows by host id (maintenance-windows.ts); a host absent is always open. */
    windows?: ReadonlyMap<string, readonly MaintenanceWindow[]>;
  },
): HostUpdateFleetObservation {
  const byId = new Map(deps.rows.map((r) => [r.id, r]));
  const hosts: Record<string, HostUpdateObservation> = {};
  for (const hostId of Object.keys(record.hosts)) {
    const host = deps.known.get(hostId);
    const apps: HostAppObservation[] = (host?.inventory?.apps ?? []).map((a) => ({
      name: a.name,
      health: a.health === "healthy" || a.health === "unhealthy" ? a.health : "unknown",
      healthySince: a.health === "healthy" && a.healthSinceMs > 0 ? a.healthSinceMs : null,
    }));
    hosts[hostId] = {
      online: host ? deps.hub.isOnline(hostId) : false,
      command: observeCommand(byId.get(hostUpdateCommandId(record.id, { kind: "run", hostId }))),
      reboot: observeCommand(byId.get(hostUpdateCommandId(record.id, { kind: "reboot", hostId }))),
      apps,
    };
    const windows = deps.windows?.get(hostId);
    if (windows !== undefined) hosts[hostId].windows = windows;
  }
  return { hosts };
}
