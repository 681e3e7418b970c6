// Builders and a small simulated fleet for the rollout planner tests. The fleet answers commands the way
// agents do (results show up in the next observation); it is a fake for testing pure logic only.
import {
  type AppObservation,
  type CommandObservation,
  createRollout,
  type FetchObservation,
  type FleetObservation,
  type HostObservation,
  type HostStep,
  type PlanResult,
  planRollout,
  type RawStrategy,
  type RolloutCommand,
  type RolloutEvent,
  type RolloutRecord,
  resolveStrategy,
  rolloutCommandKey,
} from "@gild/core";
import { expect } from "vitest";

export const T0 = 1_700_000_000_000;
export const SEC = 1000;
export const MIN = 60 * SEC;

/** Hosts h1..hn, each running app `web` of line php at `from`. */
export function targets(n: number, from = 1) {
  return Array.from({ length: n }, (_, i) => ({
    hostId: `h${i + 1}`,
    apps: [{ name: "web", version: from }],
  }));
}

/** A fresh rollout of php@2 over h1..hn, created at T0. */
export function newRollout(hosts: number, raw: RawStrategy = {}, now = T0): RolloutRecord {
  return createRollout(
    {
      id: "r1",
      line: "php",
      version: 2,
      strategy: resolveStrategy(raw),
      targets: targets(hosts),
      activeRolloutIds: [],
    },
    now,
  );
}

/** A copy of `record` with some host steps patched. */
export function withHosts(record: RolloutRecord, patch: Record<string, Partial<HostStep>>): RolloutRecord {
  const out = structuredClone(record);
  for (const [id, p] of Object.entries(patch)) out.hosts[id] = { ...(out.hosts[id] as HostStep), ...p };
  return out;
}

/** A copy of `record` with top-level fields patched. */
export function withRollout(record: RolloutRecord, patch: Partial<RolloutRecord>): RolloutRecord {
  return { ...structuredClone(record), ...patch };
}

/** An online host that has nothing yet and runs `web` at version 1, healthy. */
export function hostObs(patch: Partial<HostObservation> = {}): HostObservation {
  return {
    online: true,
    hasImage: false,
    rollbackReady: true,
    fetch: null,
    switch: null,
    rollback: null,
    apps: [{ name: "web", version: 1, health: "healthy", healthySince: T0 - 3_600_000 }],
    ...patch,
  };
}

/** The fleet observation: every host of the record as hostObs(), with per-host patches. */
export function fleetObs(
  record: RolloutRecord,
  patch: Record<string, Partial<HostObservation>> = {},
  base: Partial<HostObservation> = {},
): FleetObservation {
  const hosts: Record<string, HostObservation> = {};
  for (const id of Object.keys(record.hosts)) hosts[id] = hostObs({ ...base, ...patch[id] });
  return { hosts };
}

export const ok: CommandObservation = { state: "succeeded", rolledBack: false, reason: null };
export const fetched = (attempt = 1): FetchObservation => ({ ...ok, attempt });

/** Apps of a host that runs the target (php@2) healthy since `since`. */
export function onTarget(
  since: number | null,
  health: AppObservation["health"] = "healthy",
): AppObservation[] {
  return [{ name: "web", version: 2, health, healthySince: health === "healthy" ? since : null }];
}

/** Deep-freeze a value so a planner that mutated its input would throw. */
export function frozen<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) frozen(inner);
  }
  return value;
}

/** planRollout on a frozen copy of the inputs, so any mutation of the input fails the test. */
export function plan(record: RolloutRecord, observation: FleetObservation, now: number): PlanResult {
  return planRollout(frozen(structuredClone(record)), frozen(structuredClone(observation)), now);
}

/**
 * The planner hands back its input itself exactly when the step changed nothing in it (the executor
 * stores a record only when it is a new object), and a new object whenever something changed.
 */
function expectSameIffUnchanged(record: RolloutRecord, observation: FleetObservation, now: number): void {
  const input = frozen(structuredClone(record));
  const result = planRollout(input, frozen(structuredClone(observation)), now);
  const json = (r: RolloutRecord) => JSON.stringify({ ...r, updatedAt: 0 });
  if (result.rollout === input) expect(json(result.rollout)).toBe(json(record));
  else expect(json(result.rollout)).not.toBe(json(record));
}

export const kinds = (commands: RolloutCommand[]) => commands.map((c) => `${c.kind}:${c.hostId}`).sort();

/** How a simulated host answers. */
export interface HostBehaviour {
  online?: boolean;
  hasImage?: boolean;
  rollbackReady?: boolean;
  fetch?: "ok" | "fail" | "fail-once" | "hang";
  /** hang: the switch command never completes. */
  switch?: "ok" | "fail-rolled-back" | "fail" | "hang";
  /** The apps after a successful switch: healthy, unhealthy, or healthy streaks that break every 5 s. */
  health?: "healthy" | "unhealthy" | "flapping";
  rollback?: "ok" | "fail" | "hang";
}

interface SimHost {
  behaviour: HostBehaviour;
  hasImage: boolean;
  fetch: FetchObservation | null;
  switch: CommandObservation | null;
  rollback: CommandObservation | null;
  version: number;
  healthySince: number | null;
  /** What an offline host last reported: it stays as it was. */
  frozenAs: HostObservation | null;
}

/** A fake fleet driven by the planner's commands. */
export class SimFleet {
  readonly sent: Array<{ at: number; command: RolloutCommand }> = [];
  readonly events: RolloutEvent[] = [];
  readonly marks: Array<"stable" | "bad"> = [];
  private readonly hosts = new Map<string, SimHost>();
  private readonly delivered = new Set<string>();

  constructor(
    record: RolloutRecord,
    behaviours: Record<string, HostBehaviour> = {},
    readonly version = record.version,
  ) {
    for (const id of Object.keys(record.hosts)) {
      const behaviour = behaviours[id] ?? {};
      this.hosts.set(id, {
        behaviour,
        hasImage: behaviour.hasImage ?? false,
        fetch: null,
        switch: null,
        rollback: null,
        version: 1,
        healthySince: T0 - 3_600_000,
        frozenAs: null,
      });
    }
  }

  /** Change how a host behaves from now on (go offline, turn unhealthy...). */
  set(hostId: string, patch: HostBehaviour, now: number): void {
    const host = this.host(hostId);
    if (patch.online === false && host.behaviour.online !== false)
      host.frozenAs = this.observeHost(host, now);
    if (patch.online === true) host.frozenAs = null;
    if (
      patch.health !== undefined &&
      patch.health !== host.behaviour.health &&
      host.version === this.version
    ) {
      host.healthySince = patch.health === "healthy" ? now : null;
    }
    host.behaviour = { ...host.behaviour, ...patch };
  }

  observe(now: number): FleetObservation {
    const hosts: Record<string, HostObservation> = {};
    for (const [id, host] of this.hosts) hosts[id] = host.frozenAs ?? this.observeHost(host, now);
    return { hosts };
  }

  /**
   * Deliver commands: results are visible in the next observation. Offline hosts get nothing. A command
   * delivered before is not run again (the executor's ids are deterministic; the agents journal them).
   */
  apply(commands: RolloutCommand[], now: number): void {
    for (const command of commands) {
      const key = rolloutCommandKey(command);
      if (this.delivered.has(key)) continue;
      this.delivered.add(key);
      this.sent.push({ at: now, command });
      const host = this.host(command.hostId);
      const b = host.behaviour;
      if (b.online === false) continue;
      if (command.kind === "fetch") {
        const mode = b.fetch ?? "ok";
        const fails = mode === "fail" || (mode === "fail-once" && command.attempt === 1);
        if (mode === "hang")
          host.fetch = { state: "running", rolledBack: false, reason: null, attempt: command.attempt };
        else if (fails)
          host.fetch = {
            state: "failed",
            rolledBack: false,
            reason: "connection reset",
            attempt: command.attempt,
          };
        else {
          host.fetch = { state: "succeeded", rolledBack: false, reason: null, attempt: command.attempt };
          host.hasImage = true;
        }
      } else if (command.kind === "switch") {
        const mode = b.switch ?? "ok";
        if (mode === "hang") host.switch = { state: "running", rolledBack: false, reason: null };
        else if (mode === "fail-rolled-back") {
          host.switch = {
            state: "failed",
            rolledBack: true,
            reason: "GILD_HEALTH_FAILED: web did not turn healthy",
          };
        } else if (mode === "fail") {
          host.switch = { state: "failed", rolledBack: false, reason: "GILD_CONTAINER_START_FAILED: web" };
          host.version = this.version;
          host.healthySince = null;
        } else {
          host.switch = { state: "succeeded", rolledBack: false, reason: null };
          host.version = this.version;
          host.healthySince = (b.health ?? "healthy") === "healthy" ? now : null;
        }
      } else {
        const mode = b.rollback ?? "ok";
        if (mode === "hang") host.rollback = { state: "running", rolledBack: false, reason: null };
        else if (mode === "fail")
          host.rollback = { state: "failed", rolledBack: false, reason: "no previous generation" };
        else {
          host.rollback = { state: "succeeded", rolledBack: false, reason: null };
          host.version = 1;
          host.healthySince = now;
        }
      }
    }
  }

  /** Commands sent so far, as "kind:host". */
  sentKinds(kind?: RolloutCommand["kind"]): string[] {
    return this.sent
      .filter((s) => kind === undefined || s.command.kind === kind)
      .map((s) => s.command.hostId);
  }

  private observeHost(host: SimHost, now: number): HostObservation {
    const b = host.behaviour;
    let health: AppObservation["health"] = "healthy";
    let since = host.healthySince;
    if (host.version === this.version) {
      const mode = b.health ?? "healthy";
      if (mode === "unhealthy" || host.healthySince === null) {
        health = "unhealthy";
        since = null;
      } else if (mode === "flapping") {
        // The probe breaks every 5 s, so the healthy streak restarts: never minHealthy (10 s) long.
        since = Math.max(host.healthySince, now - (now % 5000));
      }
    }
    return {
      online: b.online !== false,
      hasImage: host.hasImage,
      rollbackReady: b.rollbackReady ?? true,
      fetch: host.fetch,
      switch: host.switch,
      rollback: host.rollback,
      apps: [{ name: "web", version: host.version, health, healthySince: since }],
    };
  }

  private host(id: string): SimHost {
    const host = this.hosts.get(id);
    if (host === undefined) throw new Error(`no simulated host ${id}`);
    return host;
  }
}

export interface RunResult {
  rollout: RolloutRecord;
  now: number;
}

/**
 * Plan, deliver, observe, plan again, one simulated second at a time, until `stop` holds, the rollout
 * is paused or terminal, or `maxMs` passes. Every step also checks the planner's contracts: the input is
 * not mutated (frozen), planning again at once changes nothing and sends nothing, no host is switched
 * twice, and nextWakeAt is never in the past.
 */
export function run(
  fleet: SimFleet,
  start: RolloutRecord,
  from: number,
  options: {
    maxMs?: number;
    stop?: (r: RolloutRecord, now: number) => boolean;
    onStep?: (result: PlanResult, now: number) => void;
    tick?: number;
  } = {},
): RunResult {
  const tick = options.tick ?? SEC;
  const end = from + (options.maxMs ?? 60 * MIN);
  let rollout = start;
  let now = from;
  for (; now <= end; now += tick) {
    const observation = fleet.observe(now);
    const result = plan(rollout, observation, now);
    if (result.nextWakeAt !== null) expect(result.nextWakeAt).toBeGreaterThan(now);
    const again = plan(result.rollout, observation, now);
    expect(again.commands).toEqual([]);
    expect(again.rollout).toEqual(result.rollout);
    expectSameIffUnchanged(rollout, observation, now);
    fleet.events.push(...result.events);
    if (result.markVersion !== null) fleet.marks.push(result.markVersion);
    fleet.apply(result.commands, now);
    rollout = result.rollout;
    options.onStep?.(result, now);
    const switched = fleet.sentKinds("switch");
    expect(new Set(switched).size).toBe(switched.length);
    if (options.stop?.(rollout, now)) return { rollout, now };
    if (["paused", "succeeded", "failed", "aborted", "rolled-back"].includes(rollout.state)) break;
  }
  return { rollout, now };
}

/** Host states of a record, as { hostId: state }. */
export function states(record: RolloutRecord): Record<string, string> {
  return Object.fromEntries(Object.values(record.hosts).map((h) => [h.hostId, h.state]));
}
