import type {
  FleetObservation,
  HostObservation,
  HostState,
  HostStep,
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
  readonly events: RolloutEvent[];
  markVersion: "stable" | "bad" | null;
  /**
   * Commands were held back for the step 1 ms later (at a wave's start: the next wave's prefetch, and
   * the switches after the first SWITCHES_AT_WAVE_START): plan again then.
   */
  heldBack: boolean;
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
  return {
    rollout: copyRecord(rollout),
    observation,
    now,
    events: [],
    markVersion: null,
    heldBack: false,
  };
}

/**
 * A deep copy of a record. Host steps hold scalars (and badPeers, which the planner replaces whole and
 * never changes in place), so each is copied with a spread: for a rollout
 * over 10,000 hosts this is several times faster than structuredClone, and the planner runs on every
 * step.
 */
export function copyRecord(rollout: RolloutRecord): RolloutRecord {
  const hosts: Record<string, HostStep> = {};
  // for-in, not Object.entries: no pair array per host (half the time at 10,000 hosts).
  for (const id in rollout.hosts) hosts[id] = { ...(rollout.hosts[id] as HostStep) };
  return {
    ...rollout,
    strategy: structuredClone(rollout.strategy),
    waves: rollout.waves.map((wave) => [...wave]),
    acceptedFailures: [...rollout.acceptedFailures],
    hosts,
  };
}

/**
 * Do two records of a wave job (a rollout, a host update) say the same? Host by host and field by
 * field, without serialising either.
 */
export function sameRecord<S extends object, R extends { hosts: Record<string, S>; waves: string[][] }>(
  a: R,
  b: R,
): boolean {
  const { hosts: hostsA, waves: wavesA, ...restA } = a;
  const { hosts: hostsB, waves: wavesB, ...restB } = b;
  if (JSON.stringify(restA) !== JSON.stringify(restB)) return false;
  if (wavesA.length !== wavesB.length) return false;
  for (let w = 0; w < wavesA.length; w++) {
    const x = wavesA[w] as string[];
    const y = wavesB[w] as string[];
    if (x.length !== y.length || x.some((id, i) => id !== y[i])) return false;
  }
  // Without allocating per host: this runs on every step, over every host.
  let hostCount = 0;
  for (const id in hostsA) {
    hostCount += 1;
    if (!sameFields(hostsA[id] as S, hostsB[id])) return false;
  }
  for (const _ in hostsB) hostCount -= 1;
  return hostCount === 0;
}

/**
 * Do two host steps hold the same fields with the same values? Steps hold scalars (and arrays the
 * planner replaces whole, never changes in place), so `===` per field; no key arrays, as this runs for
 * every host on every step.
 */
export function sameFields<S extends object>(a: S, b: S | undefined): boolean {
  if (b === undefined) return false;
  if (a === b) return true;
  let fields = 0;
  for (const k in a) {
    fields += 1;
    if (a[k] !== b[k]) return false;
  }
  for (const _ in b) fields -= 1;
  return fields === 0;
}

/** The observation of one host, or an offline placeholder when the executor has none. */
export function observed(ctx: PlanContext, hostId: string): HostObservation {
  return ctx.observation.hosts[hostId] ?? UNOBSERVED;
}

/**
 * Is this step planned at the instant the current wave started? Keyed to the time, not the step:
 * planning again at the same instant does no more. Records stored before waveStartedAt existed have
 * none, and are never at a wave's start.
 */
export function atWaveStart(ctx: PlanContext): boolean {
  return ctx.now <= (ctx.rollout.waveStartedAt ?? Number.NEGATIVE_INFINITY);
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
