import type { BadPeerReport, HostObservation, HostStep } from "./rollout-model.js";
import { emit, moveHost, observed, type PlanContext } from "./rollout-plan-context.js";
import { MAX_FETCH_ATTEMPTS, rollbackDeadlineMs } from "./rollout-rules.js";
import { formatDuration } from "./units.js";

/**
 * Host transitions that follow from what was observed, with no command: results of fetch, switch and
 * rollback commands, and health. `watch` also fails a host already counted healthy that turns unhealthy.
 */
export function observeHost(ctx: PlanContext, host: HostStep, watch: boolean): void {
  const obs = observed(ctx, host.hostId);
  // In any state: the image may show in the inventory before the fetch's result is observed.
  if (obs.fetch?.badPeers && obs.fetch.attempt === host.fetchAttempts)
    noteBadPeers(ctx, host, obs.fetch.badPeers);
  switch (host.state) {
    case "pending":
      if (obs.hasImage) moveHost(ctx, host, "staged", "the image is already on the host");
      return;
    case "fetching": {
      const fetch = obs.fetch !== null && obs.fetch.attempt === host.fetchAttempts ? obs.fetch : null;
      if (obs.hasImage || fetch?.state === "succeeded") {
        moveHost(ctx, host, "staged");
      } else if (fetch?.state === "failed" && host.fetchAttempts >= MAX_FETCH_ATTEMPTS) {
        moveHost(
          ctx,
          host,
          "failed",
          `fetch failed ${host.fetchAttempts} times: ${fetch.reason ?? "no reason given"}`,
        );
      }
      return;
    }
    case "switching":
      if (obs.switch?.state === "succeeded") {
        moveHost(ctx, host, "verifying");
        if (isHealthyFor(ctx, obs)) becomeHealthy(ctx, host);
      } else if (obs.switch?.state === "failed") {
        const reason = `switch failed: ${obs.switch.reason ?? "no reason given"}`;
        if (obs.switch.rolledBack) {
          // The agent already started the previous generation again and held it to its health gate:
          // nothing left to roll back, whether it passed (rolled-back) or not (rollback-failed).
          host.deadlineAt = null;
          host.rollbackPending = false;
          moveHost(ctx, host, "failed", reason);
          if (obs.switch.rollbackUnhealthy) moveHost(ctx, host, "rollback-failed");
          else moveHost(ctx, host, "rolled-back");
        } else {
          failSwitchedHost(ctx, host, reason);
        }
      }
      return;
    case "verifying":
      if (isHealthyFor(ctx, obs)) becomeHealthy(ctx, host);
      return;
    case "healthy": {
      const broken = watch && obs.online ? brokenApp(ctx, obs) : null;
      if (broken !== null)
        failSwitchedHost(ctx, host, `turned unhealthy after it was counted healthy: ${broken}`);
      return;
    }
    case "rolling-back":
      if (obs.rollback?.state === "succeeded") {
        host.deadlineAt = null;
        moveHost(ctx, host, "rolled-back");
      } else if (obs.rollback?.state === "failed") {
        host.deadlineAt = null;
        moveHost(
          ctx,
          host,
          "rollback-failed",
          `rollback failed: ${obs.rollback.reason ?? "no reason given"}`,
        );
      }
      return;
    case "staged":
    case "failed":
    case "rolled-back":
    case "rollback-failed":
      return;
  }
}

/**
 * Record the peers a fetch reported for serving bad chunks, with an event for each one not recorded
 * before: a fetch's result is observed on every step until the host moves on, or again after a retry.
 */
function noteBadPeers(ctx: PlanContext, host: HostStep, reported: readonly BadPeerReport[]): void {
  const known = host.badPeers ?? [];
  const fresh = reported.filter(
    (b, i) =>
      !known.some((k) => k.hostId === b.hostId) && reported.findIndex((r) => r.hostId === b.hostId) === i,
  );
  if (fresh.length === 0) return;
  host.badPeers = [...known, ...fresh.map((b) => ({ hostId: b.hostId, reason: b.reason }))];
  for (const bad of fresh)
    emit(ctx, {
      kind: "bad-peer",
      hostId: host.hostId,
      wave: host.wave,
      message: `host ${host.hostId}: peer ${bad.hostId} served a chunk that did not match the signed manifest (${bad.reason || "no reason given"}); not used again for this transfer`,
    });
}

/**
 * Host clocks: a switched host past its healthy deadline fails (`healthyDeadlines`), and a rollback
 * that does not finish within healthyDeadline fails that host's rollback, so rolling back never hangs.
 */
export function enforceHostDeadlines(ctx: PlanContext, host: HostStep, healthyDeadlines: boolean): void {
  if (host.deadlineAt === null || ctx.now < host.deadlineAt) return;
  if (healthyDeadlines && (host.state === "switching" || host.state === "verifying")) {
    emit(ctx, {
      kind: "deadline-exceeded",
      hostId: host.hostId,
      wave: host.wave,
      message: `host ${host.hostId} did not turn healthy within ${formatDuration(ctx.rollout.strategy.healthyDeadlineMs)}`,
    });
    failSwitchedHost(ctx, host, "healthy deadline exceeded");
  } else if (host.state === "rolling-back") {
    const within = formatDuration(rollbackDeadlineMs(ctx.rollout));
    emit(ctx, {
      kind: "deadline-exceeded",
      hostId: host.hostId,
      wave: host.wave,
      message: `host ${host.hostId} did not finish its rollback within ${within}`,
    });
    host.deadlineAt = null;
    moveHost(ctx, host, "rollback-failed", `rollback did not complete within ${within}`);
  }
}

/** Fail a host that was switched: it may run the target version, so it is to be rolled back. */
export function failSwitchedHost(ctx: PlanContext, host: HostStep, reason: string): void {
  host.deadlineAt = null;
  host.rollbackPending = true;
  moveHost(ctx, host, "failed", reason);
}

/** When a verifying host will have held healthy for minHealthy, if its apps are healthy now; else null. */
export function healthyAtTime(ctx: PlanContext, obs: HostObservation): number | null {
  const { version, strategy } = ctx.rollout;
  if (obs.apps.length === 0) return null;
  let since = Number.NEGATIVE_INFINITY;
  for (const app of obs.apps) {
    if (app.version !== version || app.health !== "healthy" || app.healthySince === null) return null;
    since = Math.max(since, app.healthySince);
  }
  return since + strategy.minHealthyMs;
}

/** Every app on the target, healthy, and healthy without a break for minHealthy (flapping resets it). */
function isHealthyFor(ctx: PlanContext, obs: HostObservation): boolean {
  const at = healthyAtTime(ctx, obs);
  return at !== null && at <= ctx.now;
}

function becomeHealthy(ctx: PlanContext, host: HostStep): void {
  host.healthyAt = ctx.now;
  host.deadlineAt = null;
  moveHost(ctx, host, "healthy");
}

/** The first app that is reported unhealthy or off the target version, described; null if none. */
function brokenApp(ctx: PlanContext, obs: HostObservation): string | null {
  for (const app of obs.apps) {
    if (app.version !== ctx.rollout.version) return `app ${app.name} runs version ${app.version}`;
    // "unknown" is not a verdict (a probe not run yet, or no report): only "unhealthy" fails a host.
    if (app.health === "unhealthy") return `app ${app.name} is unhealthy`;
  }
  return null;
}
