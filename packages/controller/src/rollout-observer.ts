import type {
  AppObservation,
  CommandObservation,
  FetchObservation,
  FleetObservation,
  HostObservation,
  MaintenanceWindow,
  RolloutRecord,
} from "@gild/core";
import type { AppInstance } from "@gild/protocol";
import type { AgentHub } from "./agent-hub.js";
import { hostHasVersion } from "./image-service.js";
import { badPeersOf } from "./peer-sourcing.js";
import type { CommandRecord } from "./store/commands-repo.js";
import type { HostInventory, HostRecord } from "./store/hosts-repo.js";

/** Deterministic command ids: re-issuing after a restart is a no-op, and agents never run one twice. */
export const rolloutCommandId = {
  fetch: (rolloutId: string, hostId: string, attempt: number) => `${rolloutId}:${hostId}:fetch:${attempt}`,
  switch: (rolloutId: string, hostId: string, app: string) => `${rolloutId}:${hostId}:switch:${app}`,
  rollback: (rolloutId: string, hostId: string, app: string) => `${rolloutId}:${hostId}:rollback:${app}`,
};

/** The parts of a rollout command id. */
export function parseRolloutCommandId(id: string): { hostId: string; kind: string; arg: string } | undefined {
  const match = /^ro_[0-9a-f]+:([^:]+):(fetch|switch|rollback):(.+)$/.exec(id);
  return match
    ? { hostId: match[1] as string, kind: match[2] as string, arg: match[3] as string }
    : undefined;
}

/** Apps of the line on a host that the rollout covers, from its inventory. */
export function appsInScope(
  inventory: HostInventory | null,
  line: string,
  appNames: ReadonlySet<string>,
): HostInventory["apps"] {
  return (inventory?.apps ?? []).filter((a) => versionOnLine(a, line) !== undefined && appNames.has(a.name));
}

/**
 * The version of `line` an app instance runs: its image version when the line is its image, its code
 * version when the line is its code (line names are one namespace); undefined when it uses neither.
 */
export function versionOnLine(
  app: Pick<AppInstance, "imageLine" | "imageVersion" | "codeLine" | "codeVersion">,
  line: string,
): number | undefined {
  if (app.imageLine === line) return app.imageVersion;
  if (app.codeLine !== "" && app.codeLine === line) return app.codeVersion;
  return undefined;
}

/** What a switch or rollback command reports back (the DeployResult, as the store keeps it). */
interface SwitchResult {
  rolledBack?: boolean;
  rollbackUnhealthy?: boolean;
  reason?: string;
  rollbackReason?: string;
  /** A rollback that had nothing to switch: its error message says all. */
  unchanged?: boolean;
}

const switchResult = (row: CommandRecord): SwitchResult => (row.result ?? {}) as SwitchResult;

function errorReason(row: CommandRecord): string {
  const result = switchResult(row);
  if (result.unchanged && row.error) return row.error.message;
  const why = result.reason || row.error?.message || "failed";
  return result.rollbackUnhealthy
    ? `${why}; the generation it went back to is not healthy either: ${result.rollbackReason || "no reason given"}`
    : why;
}

/** Many commands of one kind on one host seen as one: still running, all succeeded, or failed. */
function aggregate(rows: CommandRecord[], kind: "switch" | "rollback"): CommandObservation | null {
  if (rows.length === 0) return null;
  if (rows.some((r) => r.state === "pending" || r.state === "running")) {
    return {
      state: rows.some((r) => r.state === "running") ? "running" : "pending",
      rolledBack: false,
      reason: null,
    };
  }
  const failed = rows.filter((r) => r.state === "failed");
  if (failed.length === 0) return { state: "succeeded", rolledBack: false, reason: null };
  // The host is back where it was only when every app that failed rolled back on its own and none switched.
  const rolledBack =
    kind === "switch" &&
    failed.length === rows.length &&
    failed.every((r) => switchResult(r).rolledBack === true);
  const rollbackUnhealthy = failed.some((r) => switchResult(r).rollbackUnhealthy === true);
  return { state: "failed", rolledBack, rollbackUnhealthy, reason: failed.map(errorReason).join("; ") };
}

/** What observeRollout saw of one host, and what that depended on. */
interface SeenHost {
  host: HostRecord | undefined;
  online: boolean;
  /** The host's commands of the rollout (records are replaced, never changed, when their state changes). */
  rows: readonly CommandRecord[];
  /** Its step is rolling back, the rollback not pending: the one part of the step an observation reads. */
  rollingBack: boolean;
  observation: HostObservation;
}

const NO_ROWS: readonly CommandRecord[] = Object.freeze([]);

const sameRows = (a: readonly CommandRecord[], b: readonly CommandRecord[]) =>
  a.length === b.length && a.every((row, i) => row === b[i]);

/**
 * One rollout's observations from its last planning step (the executor keeps one per active rollout).
 * A step at 10,000 hosts sees a wave's worth change at most: a host whose record (the hosts repository
 * replaces it on every change), link, commands and rolling-back flag are all as they were keeps its
 * observation, instead of taking its commands apart again (about 100 ms per step at 10,000 hosts).
 */
export class ObservationCache {
  /** The rollout's line, version and apps the cached observations were made for. */
  private scope = "";
  private readonly hosts = new Map<string, SeenHost>();

  /** The cached observations hold for this scope (else they are dropped). */
  enter(scope: string): void {
    if (scope === this.scope) return;
    this.scope = scope;
    this.hosts.clear();
  }

  get(hostId: string): SeenHost | undefined {
    return this.hosts.get(hostId);
  }

  set(hostId: string, seen: SeenHost): void {
    this.hosts.set(hostId, seen);
  }
}

/**
 * What the executor sees of a rollout's hosts: liveness, image presence, rollback readiness, the
 * results of this rollout's commands, and the line's apps from each inventory. `known` (every host)
 * and `rows` (the rollout's commands) are read once per planning step by the caller, not once per
 * host: a rollout may cover thousands. With a `cache`, a host nothing changed for keeps its last
 * observation.
 */
export function observeRollout(
  record: RolloutRecord,
  appNames: ReadonlySet<string>,
  deps: {
    hub: AgentHub;
    versionUuid: string;
    known: ReadonlyMap<string, HostRecord>;
    rows: readonly CommandRecord[];
    /** Effective maintenance windows by host id (maintenance-windows.ts); a host absent is always open. */
    windows?: ReadonlyMap<string, readonly MaintenanceWindow[]>;
    /** The observations of this rollout's last step. */
    cache?: ObservationCache;
  },
): FleetObservation {
  const cache = deps.cache;
  cache?.enter(`${record.line}\n${record.version}\n${deps.versionUuid}\n${[...appNames].sort().join("\n")}`);
  const byHost = new Map<string, CommandRecord[]>();
  for (const row of deps.rows) {
    const list = byHost.get(row.hostId);
    if (list) list.push(row);
    else byHost.set(row.hostId, [row]);
  }
  const hosts: Record<string, HostObservation> = {};
  const known = deps.known;
  for (const hostId of Object.keys(record.hosts)) {
    const host = known.get(hostId);
    const online = host ? deps.hub.isOnline(hostId) : false;
    const mine = byHost.get(hostId) ?? NO_ROWS;
    const step = record.hosts[hostId];
    const rollingBack = step?.state === "rolling-back" && !step.rollbackPending;
    const windows = deps.windows?.get(hostId);
    const seen = cache?.get(hostId);
    if (
      seen !== undefined &&
      windows === undefined &&
      seen.host === host &&
      seen.online === online &&
      seen.rollingBack === rollingBack &&
      sameRows(seen.rows, mine)
    ) {
      hosts[hostId] = seen.observation;
      continue;
    }
    const inventory = host?.inventory ?? null;
    const parsed = mine.map((row) => ({ row, id: parseRolloutCommandId(row.id) }));
    const fetches = parsed
      .filter((p) => p.id?.kind === "fetch")
      .sort((a, b) => Number(b.id?.arg) - Number(a.id?.arg));
    const newestFetch = fetches[0];
    const badPeers = newestFetch ? badPeersOf(newestFetch.row.result) : [];
    const fetch: FetchObservation | null = newestFetch
      ? {
          state: newestFetch.row.state,
          rolledBack: false,
          reason: newestFetch.row.state === "failed" ? errorReason(newestFetch.row) : null,
          attempt: Number(newestFetch.id?.arg),
          ...(badPeers.length > 0 ? { badPeers } : {}),
        }
      : null;
    const switches = parsed.filter((p) => p.id?.kind === "switch").map((p) => p.row);
    const rollbacks = parsed.filter((p) => p.id?.kind === "rollback").map((p) => p.row);
    const apps = appsInScope(inventory, record.line, appNames);
    let rollback = aggregate(rollbacks, "rollback");
    // A host to roll back with no app on the target (its switch never succeeded) has nothing to undo.
    if (rollback === null && rollingBack && !switches.some((r) => r.state !== "failed")) {
      rollback = { state: "succeeded", rolledBack: false, reason: null };
    }
    const appObservations: AppObservation[] = apps.map((a) => ({
      name: a.name,
      version: versionOnLine(a, record.line) ?? 0,
      health: a.health === "healthy" || a.health === "unhealthy" ? a.health : "unknown",
      healthySince: a.health === "healthy" && a.healthSinceMs > 0 ? a.healthSinceMs : null,
    }));
    const observation: HostObservation = {
      online,
      hasImage: hostHasVersion(inventory, { line: record.line, uuid: deps.versionUuid }),
      rollbackReady:
        apps.length > 0 &&
        apps.every((a) => a.generation > 0 && versionOnLine(a, record.line) !== record.version),
      fetch,
      switch: aggregate(switches, "switch"),
      rollback,
      apps: appObservations,
    };
    if (windows !== undefined) observation.windows = windows;
    hosts[hostId] = observation;
    // A host with maintenance windows is seen afresh each step (they are read anew each time).
    if (windows === undefined) cache?.set(hostId, { host, online, rows: mine, rollingBack, observation });
  }
  return { hosts };
}
