import { issueFetches, issueRollbacks, issueSwitches, windowWakeAt } from "./rollout-commands.js";
import { commandsCalledFor, rolloutCommandKey } from "./rollout-dispatch.js";
import { enforceHostDeadlines, failSwitchedHost, healthyAtTime, observeHost } from "./rollout-host-steps.js";
import {
  type FleetObservation,
  type HostStep,
  isSettledRolloutState,
  type PauseCause,
  type PlanResult,
  type RolloutCommand,
  type RolloutRecord,
  type RolloutState,
} from "./rollout-model.js";
import {
  atWaveStart,
  emit,
  moveHost,
  moveRollout,
  newPlanContext,
  observed,
  type PlanContext,
  sameRecord,
} from "./rollout-plan-context.js";
import {
  enterRollingBack,
  failureBudget,
  hostsOfWave,
  isCanaryWave,
  isHostDone,
  markPaused,
  waveFailures,
} from "./rollout-rules.js";
import { formatDuration } from "./units.js";

/** States in which the planner acts: it sends commands and its clocks run. */
const ACTIVE: readonly RolloutState[] = ["running", "awaiting-promotion", "rolling-back"];

/**
 * One step of a rollout: from the stored record, what the executor observed and the time, the next
 * record, the commands to send, events, a version status and when to plan again. Pure: the input record
 * is never mutated; the result holds a new record, or the input itself when nothing changed.
 */
export function planRollout(rollout: RolloutRecord, observation: FleetObservation, now: number): PlanResult {
  if (isSettledRolloutState(rollout.state))
    return { rollout, commands: [], events: [], markVersion: null, nextWakeAt: null };
  const ctx = newPlanContext(rollout, observation, now);
  const r = ctx.rollout;

  // Results are recorded in every non-terminal state, aborted and paused included, so the record keeps
  // telling the truth (a later rollback relies on it); only active states send commands or run clocks.
  const watching = r.state === "running" || r.state === "awaiting-promotion" || r.state === "paused";
  const hosts = r.waves.flatMap((_, wave) => hostsOfWave(r, wave));
  for (const host of hosts) observeHost(ctx, host, watching && host.wave === r.currentWave);
  if (ACTIVE.includes(r.state)) {
    // Healthy deadlines do not apply while rolling back: those hosts are queued for a rollback anyway.
    for (const host of hosts) enforceHostDeadlines(ctx, host, r.state !== "rolling-back");
    advance(ctx);
    issueCommands(ctx);
  }

  const changed = !sameRecord(r, rollout);
  if (changed) r.updatedAt = now;
  let commands: RolloutCommand[] | undefined;
  return {
    rollout: changed ? r : rollout,
    // The commands this step calls for: what the new record calls for that the old one did not. Made
    // when first read (the executor sends what the stored record calls for, and never reads this; at
    // 10,000 hosts it cost two passes over the fleet per step). Records are never changed after a step.
    get commands(): RolloutCommand[] {
      if (commands === undefined) {
        const before = new Set(commandsCalledFor(rollout).map(rolloutCommandKey));
        commands = changed ? commandsCalledFor(r).filter((c) => !before.has(rolloutCommandKey(c))) : [];
      }
      return commands;
    },
    events: ctx.events,
    markVersion: ctx.markVersion,
    nextWakeAt: nextWakeAt(ctx),
  };
}

/**
 * Rollout-level transitions one planning step can make per wave (complete it, start the next: a bake of
 * 0 ms goes on at once, fail it, pause, ...), and a few more for the ones that end a rollout. More than
 * that is a planner bug looping, not progress.
 */
const TRANSITIONS_PER_WAVE = 4;
const FINAL_TRANSITIONS = 8;

/** Apply rollout-level transitions until none applies (a bake of 0 ms starts the next wave at once). */
function advance(ctx: PlanContext): void {
  const limit = ctx.rollout.waves.length * TRANSITIONS_PER_WAVE + FINAL_TRANSITIONS;
  for (let i = 0; i < limit; i++) {
    if (!advanceOnce(ctx)) return;
  }
  throw new Error(`planRollout: rollout ${ctx.rollout.id} did not settle after ${limit} transitions`);
}

/** One rollout-level transition, if one applies; true when something changed. */
function advanceOnce(ctx: PlanContext): boolean {
  const r = ctx.rollout;
  const wave = r.currentWave;
  switch (r.state) {
    case "running":
      if (r.phase === "deploying") {
        if (r.progressDeadlineAt !== null && ctx.now >= r.progressDeadlineAt) {
          expireProgressDeadline(ctx);
          return true;
        }
        if (overBudget(ctx)) return true;
        if (hostsOfWave(r, wave).every(isHostDone)) {
          completeWave(ctx);
          return true;
        }
        return checkRollbackReadiness(ctx);
      }
      if (overBudget(ctx)) return true;
      if (r.bakeUntil !== null && ctx.now >= r.bakeUntil) {
        startWave(ctx, wave + 1);
        return true;
      }
      return false;
    case "awaiting-promotion":
      return overBudget(ctx);
    case "rolling-back":
      if (Object.values(r.hosts).some((h) => h.rollbackPending || h.state === "rolling-back")) return false;
      finishRollback(ctx);
      return true;
    default:
      return false;
  }
}

/**
 * Commands called for by the state the step ended in. At the instant a wave starts, the next wave's
 * prefetch waits (a step 1 ms later sends it): the wave's own switches are then stored and sent without
 * thousands of fetches in the same transaction before them (at 10,000 hosts those held the first
 * switch of a wave back by about 300 ms). Keyed to the time, not the step, so planning again at the same
 * instant changes nothing.
 */
function issueCommands(ctx: PlanContext): void {
  const r = ctx.rollout;
  let next = r.strategy.prefetch && r.currentWave + 1 < r.waves.length ? [r.currentWave + 1] : [];
  if (next.length > 0 && atWaveStart(ctx)) {
    next = [];
    ctx.heldBack = true;
  }
  switch (r.state) {
    case "running":
      // A host that failed in a running rollout is rolled back at once: it is down already.
      issueRollbacks(ctx, null);
      if (r.phase === "deploying") {
        issueFetches(ctx, [r.currentWave, ...next]);
        issueSwitches(ctx, r.currentWave);
      } else {
        issueFetches(ctx, next);
      }
      return;
    case "awaiting-promotion":
      issueRollbacks(ctx, null);
      issueFetches(ctx, next);
      return;
    case "rolling-back":
      issueRollbacks(ctx, r.rollbackParallel);
      return;
    default:
      return;
  }
}

/** The wave made no progress in time: every host of it not yet healthy fails. */
function expireProgressDeadline(ctx: PlanContext): void {
  const r = ctx.rollout;
  emit(ctx, {
    kind: "deadline-exceeded",
    wave: r.currentWave,
    message: `wave ${r.currentWave} made no progress for ${formatDuration(r.strategy.progressDeadlineMs)}`,
  });
  r.progressDeadlineAt = null;
  for (const host of hostsOfWave(r, r.currentWave)) {
    if (host.state === "switching" || host.state === "verifying") {
      failSwitchedHost(ctx, host, "progress deadline exceeded");
    } else if (host.state === "pending" || host.state === "fetching" || host.state === "staged") {
      moveHost(ctx, host, "failed", "progress deadline exceeded");
    }
  }
}

/** Fail the current wave as soon as its failures exceed its budget (they can only grow). */
function overBudget(ctx: PlanContext): boolean {
  const r = ctx.rollout;
  const failures = waveFailures(r, r.currentWave);
  const budget = failureBudget(r, r.currentWave);
  if (failures.length <= budget) return false;
  const size = r.waves[r.currentWave]?.length ?? 0;
  const list = failures.map((h) => `${h.hostId} (${h.reason ?? "failed"})`).join(", ");
  failWave(ctx, `${failures.length} of ${size} hosts failed, ${budget} allowed: ${list}`);
  return true;
}

function failWave(ctx: PlanContext, why: string): void {
  const r = ctx.rollout;
  const wave = r.currentWave;
  const canary = isCanaryWave(r, wave);
  const name = canary ? "canary wave" : `wave ${wave}`;
  emit(ctx, { kind: "wave-failed", wave, message: `${name} failed: ${why}` });
  // A failed canary ends the rollout whatever onFailure says: the version is proven bad.
  if (canary || r.strategy.onFailure === "rollback") {
    const from = r.state;
    const reason = `${name} failed: ${why}`;
    const count = enterRollingBack(r, "failed", reason);
    emit(ctx, {
      kind: "rollout-state",
      message: `rollout ${r.id}: ${from} -> rolling-back: ${reason}; ${count} hosts to roll back, ${r.rollbackParallel} at a time`,
    });
    return;
  }
  // The hosts that failed are down already: their rollbacks go out before the pause.
  issueRollbacks(ctx, null);
  pause(ctx, "wave-failed", `${name} failed: ${why}`);
}

function pause(ctx: PlanContext, cause: PauseCause, reason: string): void {
  markPaused(ctx.rollout, cause, reason, ctx.now);
  moveRollout(ctx, "paused", reason);
}

/** The current wave is done within its budget: promote, bake, or finish. */
function completeWave(ctx: PlanContext): void {
  const r = ctx.rollout;
  const wave = r.currentWave;
  const canary = isCanaryWave(r, wave);
  const healthy = hostsOfWave(r, wave).filter((h) => h.state === "healthy").length;
  const size = r.waves[wave]?.length ?? 0;
  emit(ctx, {
    kind: "wave-completed",
    wave,
    message: `${canary ? "canary wave" : `wave ${wave}`} completed: ${healthy} of ${size} hosts healthy`,
  });
  r.progressDeadlineAt = null;
  r.phase = "baking";
  // The last wave is not baked: a bake protects the next wave, and after the last there is none.
  if (wave === r.waves.length - 1) {
    r.bakeUntil = null;
    r.finishedAt = ctx.now;
    r.reason = null;
    ctx.markVersion = "stable";
    moveRollout(ctx, "succeeded", `every wave completed; ${r.line}@${r.version} is stable`);
    return;
  }
  if (canary && r.strategy.promote === "manual") {
    r.bakeUntil = null;
    moveRollout(ctx, "awaiting-promotion", "the canary is healthy; `gild rollout promote` goes on");
    return;
  }
  const bakeMs = canary ? r.strategy.canaryBakeMs : r.strategy.bakeMs;
  r.bakeUntil = ctx.now + bakeMs;
  emit(ctx, { kind: "bake-started", wave, message: `baking wave ${wave} for ${formatDuration(bakeMs)}` });
}

/** Make `wave` the current one, deploying, with a fresh progress deadline. */
function startWave(ctx: PlanContext, wave: number): void {
  const r = ctx.rollout;
  r.currentWave = wave;
  r.phase = "deploying";
  r.bakeUntil = null;
  r.progressDeadlineAt = ctx.now + r.strategy.progressDeadlineMs;
  r.waveStartedAt = ctx.now;
  const size = r.waves[wave]?.length ?? 0;
  emit(ctx, { kind: "wave-started", wave, message: `wave ${wave} started: ${size} hosts` });
}

/**
 * Before the first switch of a wave, every host of it must have a generation to return to; otherwise
 * the rollout pauses rather than switch a host it could not roll back.
 */
function checkRollbackReadiness(ctx: PlanContext): boolean {
  const r = ctx.rollout;
  const hosts = hostsOfWave(r, r.currentWave);
  if (hosts.some((h) => h.switchedAt !== null)) return false;
  const unready = hosts.filter(
    (h) =>
      h.state !== "failed" &&
      h.state !== "rolled-back" &&
      h.state !== "rollback-failed" &&
      !observed(ctx, h.hostId).rollbackReady,
  );
  if (unready.length === 0) return false;
  const names = unready.map((h) => h.hostId).join(", ");
  pause(
    ctx,
    "rollback-not-ready",
    `${names} ${unready.length === 1 ? "has" : "have"} no previous generation to roll back to`,
  );
  return true;
}

function finishRollback(ctx: PlanContext): void {
  const r = ctx.rollout;
  const outcome = r.rollbackOutcome ?? "failed";
  // Hosts whose rollback failed, timed out, or went back to a generation that is not healthy.
  const stuck = Object.values(r.hosts).filter((h) => h.state === "rollback-failed");
  r.finishedAt = ctx.now;
  ctx.markVersion = "bad";
  const note = stuck.length > 0 ? `; could not be rolled back: ${stuck.map((h) => h.hostId).join(", ")}` : "";
  moveRollout(ctx, outcome, `rollback finished${note}; ${r.line}@${r.version} is bad`);
}

/**
 * The earliest clock that can change the outcome: progress deadline, bake end, a maintenance window's
 * opening, host deadlines, minHealthy.
 */
function nextWakeAt(ctx: PlanContext): number | null {
  const r = ctx.rollout;
  if (!ACTIVE.includes(r.state)) return null;
  const clocks: number[] = [];
  if (r.state === "running" && r.phase === "deploying" && r.progressDeadlineAt !== null) {
    clocks.push(r.progressDeadlineAt);
  }
  if (r.state === "running" && r.phase === "baking" && r.bakeUntil !== null) clocks.push(r.bakeUntil);
  // A staged host waiting for its maintenance window switches when it opens (absolute: a restarted
  // controller computes the same time from the same windows).
  const opens = windowWakeAt(ctx);
  if (opens !== null) clocks.push(opens);
  // What was held back at a wave's start (its prefetch, switches) goes out 1 ms later.
  if (ctx.heldBack) clocks.push(ctx.now + 1);
  for (const id in r.hosts) {
    const host = r.hosts[id] as HostStep;
    const forward = r.state !== "rolling-back" && (host.state === "switching" || host.state === "verifying");
    if (host.deadlineAt !== null && (forward || host.state === "rolling-back")) clocks.push(host.deadlineAt);
    if (r.state !== "rolling-back" && host.state === "verifying") {
      const at = healthyAtTime(ctx, observed(ctx, host.hostId));
      if (at !== null) clocks.push(at);
    }
  }
  let next: number | null = null;
  for (const t of clocks) if (t > ctx.now && (next === null || t < next)) next = t;
  return next;
}
