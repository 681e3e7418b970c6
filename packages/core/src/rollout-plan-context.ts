import type {
  FleetObservation,
  HostObservation,
  HostState,
  HostStep,
  RolloutCommand,
  RolloutEvent,
  RolloutRecord,
  RolloutState,
} from "./rollout-model.js";

/** One planning step in progress: a private copy of the record plus what the step emits. */
export interface PlanContext {
  /** A deep copy of the input record; the planner mutates only this copy. */
  readonly rollout: RolloutRecord;
  readonly observation: FleetObservation;
  readonly now: number;
  readonly commands: RolloutCommand[];
  readonly events: RolloutEvent[];
  markVersion: "stable" | "bad" | null;
}

/** What the planner assumes of a host the executor has no observation for: offline, nothing known. */
const UNOBSERVED: HostObservation = Object.freeze({
  online: false,
  hasImage: false,
  rollbackReady: true,
  fetch: null,
  switch: null,
  rollback: null,
  apps: [],
});

/** Start a planning step on a copy of `rollout`. */
export function newPlanContext(
  rollout: RolloutRecord,
  observation: FleetObservation,
  now: number,
): PlanContext {
  return { rollout: structuredClone(rollout), observation, now, commands: [], events: [], markVersion: null };
}

/** The observation of one host, or an offline placeholder when the executor has none. */
export function observed(ctx: PlanContext, hostId: string): HostObservation {
  return ctx.observation.hosts[hostId] ?? UNOBSERVED;
}

/** Record an event at `now`. */
export function emit(ctx: PlanContext, event: Omit<RolloutEvent, "at">): void {
  ctx.events.push({ at: ctx.now, ...event });
}

const FORWARD: readonly HostState[] = ["staged", "verifying", "healthy"];

/**
 * Move a host to `to` with an event. Reaching staged, verifying or healthy in the deploying wave of a
 * running rollout is progress, so it resets the progress deadline.
 */
export function moveHost(ctx: PlanContext, host: HostStep, to: HostState, reason?: string): void {
  const from = host.state;
  host.state = to;
  if (reason !== undefined) host.reason = reason;
  const r = ctx.rollout;
  if (
    FORWARD.includes(to) &&
    r.state === "running" &&
    r.phase === "deploying" &&
    host.wave === r.currentWave &&
    r.progressDeadlineAt !== null
  ) {
    r.progressDeadlineAt = ctx.now + r.strategy.progressDeadlineMs;
  }
  emit(ctx, {
    kind: "host-state",
    hostId: host.hostId,
    wave: host.wave,
    message: `host ${host.hostId}: ${from} -> ${to}${reason === undefined ? "" : `: ${reason}`}`,
  });
}

/** Move the rollout to `to` with an event. */
export function moveRollout(ctx: PlanContext, to: RolloutState, why: string): void {
  const from = ctx.rollout.state;
  ctx.rollout.state = to;
  emit(ctx, { kind: "rollout-state", message: `rollout ${ctx.rollout.id}: ${from} -> ${to}: ${why}` });
}
