import { windowWaitReason, windowWaitUntil } from "./maintenance-window.js";
import type { HostStep } from "./rollout-model.js";
import { atWaveStart, emit, moveHost, observed, type PlanContext } from "./rollout-plan-context.js";
import { hostsOfWave, MAX_FETCH_ATTEMPTS, rollbackDeadlineMs } from "./rollout-rules.js";

// The host transitions that call for commands. The commands themselves are not emitted here: the
// moved host states call for them, and commandsCalledFor (rollout-dispatch.ts) reads them off the
// record, for the planner's result and for the executor alike.

/** Fetch the image on the waves' pending hosts, and retry failed fetches; online hosts only. */
export function issueFetches(ctx: PlanContext, waves: number[]): void {
  for (const wave of waves) {
    for (const host of hostsOfWave(ctx.rollout, wave)) {
      const obs = observed(ctx, host.hostId);
      if (!obs.online || obs.hasImage) continue;
      if (host.state === "pending") {
        host.fetchAttempts += 1;
        moveHost(ctx, host, "fetching");
      } else if (
        host.state === "fetching" &&
        obs.fetch !== null &&
        obs.fetch.attempt === host.fetchAttempts &&
        obs.fetch.state === "failed" &&
        host.fetchAttempts < MAX_FETCH_ATTEMPTS
      ) {
        host.fetchAttempts += 1;
        emit(ctx, {
          kind: "host-state",
          hostId: host.hostId,
          wave,
          message: `host ${host.hostId}: fetch attempt ${host.fetchAttempts} of ${MAX_FETCH_ATTEMPTS} after: ${obs.fetch.reason ?? "no reason given"}`,
        });
      }
    }
  }
}

/**
 * Hosts the step that starts a wave switches at most; the rest switch in the step 1 ms later. The first
 * switches of a wave wait for the step's transaction, which writes every host it moves and an event
 * for each: at 10,000 hosts, moving a wave's 8,899 at once held its first switch back 130 to 180 ms.
 */
export const SWITCHES_AT_WAVE_START = 500;

/**
 * Switch staged online hosts of the wave while fewer than maxParallel of its hosts are in flux, and at
 * the instant the wave starts no more than SWITCHES_AT_WAVE_START (the step 1 ms later goes on). A host
 * outside its maintenance window stays staged with a reason saying so (fetches went on regardless), and
 * the wave's progress deadline runs from the window's opening instead: waiting for a window is not a
 * lack of progress.
 */
export function issueSwitches(ctx: PlanContext, wave: number): void {
  const r = ctx.rollout;
  const { strategy } = r;
  const hosts = hostsOfWave(r, wave);
  const limit = strategy.maxParallel ?? hosts.length;
  // A host rolling back is as disrupted as one switching, so it takes a slot too.
  let busy = hosts.filter((h) => ["switching", "verifying", "rolling-back"].includes(h.state)).length;
  let room = atWaveStart(ctx)
    ? SWITCHES_AT_WAVE_START - hosts.filter((h) => h.switchedAt === r.waveStartedAt).length
    : Number.POSITIVE_INFINITY;
  for (const host of hosts) {
    if (busy >= limit) return;
    const obs = observed(ctx, host.hostId);
    if (host.state !== "staged" || !obs.online) continue;
    const opensAt = windowWaitUntil(obs.windows, ctx.now);
    if (opensAt !== null) {
      holdForWindow(ctx, host, opensAt);
      continue;
    }
    if (room <= 0) {
      ctx.heldBack = true;
      return;
    }
    room -= 1;
    host.reason = null;
    host.switchedAt = ctx.now;
    host.deadlineAt = ctx.now + strategy.healthyDeadlineMs;
    moveHost(ctx, host, "switching");
    busy += 1;
  }
}

function holdForWindow(ctx: PlanContext, host: HostStep, opensAt: number): void {
  const r = ctx.rollout;
  if (r.progressDeadlineAt !== null)
    r.progressDeadlineAt = Math.max(r.progressDeadlineAt, opensAt + r.strategy.progressDeadlineMs);
  const why = windowWaitReason(opensAt);
  if (host.reason === why) return;
  host.reason = why;
  emit(ctx, {
    kind: "host-state",
    hostId: host.hostId,
    wave: host.wave,
    message: `host ${host.hostId}: ${why}`,
  });
}

/** When the first staged host of the current wave held back by its window may switch, or null. */
export function windowWakeAt(ctx: PlanContext): number | null {
  const r = ctx.rollout;
  if (r.state !== "running" || r.phase !== "deploying") return null;
  let earliest: number | null = null;
  for (const host of hostsOfWave(r, r.currentWave)) {
    if (host.state !== "staged") continue;
    const opensAt = windowWaitUntil(observed(ctx, host.hostId).windows, ctx.now);
    if (opensAt !== null && (earliest === null || opensAt < earliest)) earliest = opensAt;
  }
  return earliest;
}

/**
 * Send rollback commands to hosts waiting for one, failed hosts first (they are down already), at most
 * `limit` hosts rolling back at once (null: no limit). Each gets a rollback deadline.
 */
export function issueRollbacks(ctx: PlanContext, limit: number | null): void {
  // One pass over the fleet in wave order (this runs on every step of a running rollout).
  const failed: HostStep[] = [];
  const others: HostStep[] = [];
  let busy = 0;
  for (const ids of ctx.rollout.waves) {
    for (const id of ids) {
      const h = ctx.rollout.hosts[id] as HostStep;
      if (h.state === "rolling-back") busy += 1;
      if (h.rollbackPending) (h.state === "failed" ? failed : others).push(h);
    }
  }
  for (const host of [...failed, ...others]) {
    if (limit !== null && busy >= limit) return;
    startRollback(ctx, host);
    busy += 1;
  }
}

function startRollback(ctx: PlanContext, host: HostStep): void {
  host.rollbackPending = false;
  host.deadlineAt = ctx.now + rollbackDeadlineMs(ctx.rollout);
  moveHost(ctx, host, "rolling-back");
}
