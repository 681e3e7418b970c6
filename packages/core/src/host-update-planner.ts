import { hostUpdateCommandKey, hostUpdateCommandsCalledFor } from "./host-update-dispatch.js";
import {
  type HostUpdateEvent,
  type HostUpdateFleetObservation,
  type HostUpdateHostState,
  type HostUpdateObservation,
  type HostUpdatePlanResult,
  type HostUpdateRecord,
  type HostUpdateState,
  type HostUpdateStep,
  IN_FLIGHT_HOST_STATES,
} from "./host-update-model.js";
import { isSettledHostUpdate, unacceptedFailures } from "./host-update-rules.js";
import { windowWaitReason, windowWaitUntil } from "./maintenance-window.js";
import { sameRecord } from "./rollout-plan-context.js";
import { hostsOfWave, isCanaryWave } from "./rollout-rules.js";
import { formatDuration } from "./units.js";
import { batchSize } from "./wave-assignment.js";

/**
 * The command's own timeout is enforced by the agent; the controller gives it this much more before
 * it calls the host lost, so the agent's report (with the output) wins the race.
 */
export const COMMAND_REPORT_GRACE_MS = 60_000;

/** One planning step in progress: a private copy of the job plus what the step emits. */
interface Ctx {
  readonly job: HostUpdateRecord;
  readonly observation: HostUpdateFleetObservation;
  readonly now: number;
  readonly events: HostUpdateEvent[];
}

/** What the planner assumes of a host the executor has no observation for: offline, nothing known. */
const UNOBSERVED: HostUpdateObservation = Object.freeze({
  online: false,
  command: null,
  reboot: null,
  apps: [],
});

/**
 * One step of a host-update job: from the stored job, what the executor observed and the time, the next
 * job, the commands to send, events and when to plan again. Pure: the input is never mutated; the
 * result holds a new record, or the input itself when nothing changed.
 */
export function planHostUpdate(
  job: HostUpdateRecord,
  observation: HostUpdateFleetObservation,
  now: number,
): HostUpdatePlanResult {
  // A job settled by a verb (an abort with nothing in flight) gets its finishedAt from its last step.
  if (isSettledHostUpdate(job) && job.finishedAt !== null)
    return { job, commands: [], events: [], nextWakeAt: null };
  const ctx: Ctx = { job: copyJob(job), observation, now, events: [] };
  const j = ctx.job;
  // Hosts already started go on in every state (a host stopped between its command and its reboot
  // would be left half-maintained); only starting a host needs a running job.
  for (const host of allHosts(j)) stepHost(ctx, host);
  if (j.state === "running") advance(ctx);
  if (j.state === "running" && j.phase === "updating") startHosts(ctx);
  else clearWaitingDeadlines(ctx);
  if (isSettledHostUpdate(j) && j.finishedAt === null) j.finishedAt = now;

  const changed = !sameRecord(j, job);
  if (changed) j.updatedAt = now;
  const before = new Set(hostUpdateCommandsCalledFor(job).map(hostUpdateCommandKey));
  const commands = changed
    ? hostUpdateCommandsCalledFor(j).filter((c) => !before.has(hostUpdateCommandKey(c)))
    : [];
  return { job: changed ? j : job, commands, events: ctx.events, nextWakeAt: nextWakeAt(ctx) };
}

function copyJob(job: HostUpdateRecord): HostUpdateRecord {
  const hosts: Record<string, HostUpdateStep> = {};
  for (const [id, step] of Object.entries(job.hosts)) hosts[id] = { ...step };
  return {
    ...job,
    argv: [...job.argv],
    strategy: structuredClone(job.strategy),
    waves: job.waves.map((w) => [...w]),
    acceptedFailures: [...job.acceptedFailures],
    hosts,
  };
}

function allHosts(job: HostUpdateRecord): HostUpdateStep[] {
  return job.waves.flatMap((_, wave) => hostsOfWave(job, wave));
}

function observed(ctx: Ctx, hostId: string): HostUpdateObservation {
  return ctx.observation.hosts[hostId] ?? UNOBSERVED;
}

function emit(ctx: Ctx, event: Omit<HostUpdateEvent, "at">): void {
  ctx.events.push({ at: ctx.now, ...event });
}

function moveHost(ctx: Ctx, host: HostUpdateStep, to: HostUpdateHostState, reason?: string): void {
  const from = host.state;
  host.state = to;
  if (reason !== undefined) host.reason = reason;
  emit(ctx, {
    kind: "host-state",
    hostId: host.hostId,
    wave: host.wave,
    message: `host ${host.hostId}: ${from} -> ${to}${reason === undefined ? "" : `: ${reason}`}`,
  });
}

function moveJob(ctx: Ctx, to: HostUpdateState, why: string): void {
  const from = ctx.job.state;
  ctx.job.state = to;
  emit(ctx, { kind: "job-state", message: `host update ${ctx.job.id}: ${from} -> ${to}: ${why}` });
}

function failHost(ctx: Ctx, host: HostUpdateStep, reason: string): void {
  host.deadlineAt = null;
  moveHost(ctx, host, "failed", reason);
}

/** A started host's transitions: its command's and reboot's results, its health, its deadline. */
function stepHost(ctx: Ctx, host: HostUpdateStep): void {
  const obs = observed(ctx, host.hostId);
  const { strategy } = ctx.job;
  if (host.state === "running-command") {
    const result = obs.command;
    if (result?.state === "succeeded") {
      host.exitCode = result.exitCode ?? 0;
      host.deadlineAt = ctx.now + strategy.deadlineMs;
      const reboot =
        strategy.reboot === "always" || (strategy.reboot === "if-required" && result.rebootRequired);
      if (reboot) {
        host.rebootedAt = ctx.now;
        moveHost(ctx, host, "rebooting", result.rebootRequired ? "the host requires a reboot" : undefined);
      } else {
        moveHost(ctx, host, "verifying");
      }
    } else if (result?.state === "failed") {
      host.exitCode = result.exitCode;
      const why =
        result.reason ?? (result.exitCode === null ? "no reason given" : `exit code ${result.exitCode}`);
      failHost(ctx, host, `command failed: ${why}`);
    } else if (pastDeadline(ctx, host)) {
      const within = formatDuration(strategy.commandTimeoutMs + COMMAND_REPORT_GRACE_MS);
      deadlineEvent(ctx, host, `host ${host.hostId}: the command did not report within ${within}`);
      failHost(
        ctx,
        host,
        `the command did not report within ${within}${obs.online ? "" : " (host offline)"}`,
      );
    }
  }
  if (host.state === "rebooting") {
    if (obs.reboot?.state === "succeeded") moveHost(ctx, host, "verifying", "back after the reboot");
    else if (obs.reboot?.state === "failed")
      failHost(ctx, host, `reboot failed: ${obs.reboot.reason ?? "no reason given"}`);
    else if (pastDeadline(ctx, host)) {
      const within = formatDuration(strategy.deadlineMs);
      deadlineEvent(ctx, host, `host ${host.hostId} did not come back within ${within} of its reboot`);
      failHost(ctx, host, `did not come back within ${within} of its reboot`);
    }
  }
  if (host.state === "verifying") {
    const at = healthyAt(host, obs, strategy.minHealthyMs);
    if (at !== null && at <= ctx.now) {
      host.deadlineAt = null;
      host.doneAt = ctx.now;
      moveHost(ctx, host, "done");
    } else if (pastDeadline(ctx, host)) {
      const within = formatDuration(strategy.deadlineMs);
      deadlineEvent(ctx, host, `host ${host.hostId} was not healthy within ${within}`);
      failHost(ctx, host, `not healthy within ${within}: ${unhealthyWhy(host, obs)}`);
    }
  }
}

function pastDeadline(ctx: Ctx, host: HostUpdateStep): boolean {
  return host.deadlineAt !== null && ctx.now >= host.deadlineAt;
}

function deadlineEvent(ctx: Ctx, host: HostUpdateStep, message: string): void {
  emit(ctx, { kind: "deadline-exceeded", hostId: host.hostId, wave: host.wave, message });
}

/**
 * When a verifying host will have held every app healthy for minHealthy, each streak begun after its
 * reboot (one from before it proves nothing), if it is online and they are healthy now; else null.
 * A host with no app is done once it is online.
 */
function healthyAt(host: HostUpdateStep, obs: HostUpdateObservation, minHealthyMs: number): number | null {
  if (!obs.online) return null;
  let since = Number.NEGATIVE_INFINITY;
  for (const app of obs.apps) {
    if (app.health !== "healthy" || app.healthySince === null) return null;
    if (host.rebootedAt !== null && app.healthySince < host.rebootedAt) return null;
    since = Math.max(since, app.healthySince);
  }
  return obs.apps.length === 0 ? Number.NEGATIVE_INFINITY : since + minHealthyMs;
}

/** Why a verifying host is not done, for its failure. */
function unhealthyWhy(host: HostUpdateStep, obs: HostUpdateObservation): string {
  if (!obs.online) return "the host is offline";
  for (const app of obs.apps) {
    if (app.health !== "healthy" || app.healthySince === null) return `app ${app.name} is ${app.health}`;
    if (host.rebootedAt !== null && app.healthySince < host.rebootedAt)
      return `app ${app.name} has not reported since the reboot`;
  }
  return "the apps did not hold healthy for minHealthy";
}

/** Transitions one step can make per wave (fail it, complete it, start the next), and a few more. */
const TRANSITIONS_PER_WAVE = 3;
const FINAL_TRANSITIONS = 4;

/** Apply job-level transitions until none applies (a bake of 0 ms starts the next wave at once). */
function advance(ctx: Ctx): void {
  const limit = ctx.job.waves.length * TRANSITIONS_PER_WAVE + FINAL_TRANSITIONS;
  for (let i = 0; i < limit; i++) {
    if (ctx.job.state !== "running" || !advanceOnce(ctx)) return;
  }
  throw new Error(`planHostUpdate: job ${ctx.job.id} did not settle after ${limit} transitions`);
}

function advanceOnce(ctx: Ctx): boolean {
  const j = ctx.job;
  // Any failure stops the waves, in whichever wave it happened (a host of an earlier wave may fail its
  // checks late, while this one runs): there is no failure budget, and nothing to undo.
  const failed = unacceptedFailures(j);
  if (failed.length > 0) {
    stopForFailure(ctx, failed);
    return true;
  }
  if (j.phase === "updating") {
    // Every host done, or failed and accepted by the operator's resume.
    if (!hostsOfWave(j, j.currentWave).every((h) => h.state === "done" || h.state === "failed")) return false;
    completeWave(ctx);
    return true;
  }
  if (j.bakeUntil !== null && ctx.now >= j.bakeUntil) {
    startWave(ctx, j.currentWave + 1);
    return true;
  }
  return false;
}

function waveName(job: HostUpdateRecord, wave: number): string {
  return isCanaryWave(job, wave) ? "canary wave" : `wave ${wave}`;
}

function stopForFailure(ctx: Ctx, failed: HostUpdateStep[]): void {
  const j = ctx.job;
  const list = failed.map((h) => `${h.hostId} (${h.reason ?? "failed"})`).join(", ");
  const why = `${waveName(j, j.currentWave)} failed: ${list}; nothing is undone, the hosts keep what the command did`;
  emit(ctx, { kind: "wave-failed", wave: j.currentWave, message: why });
  j.reason = why;
  if (j.strategy.onFailure === "pause") {
    j.pausedAt = ctx.now;
    j.pauseCause = "host-failed";
    moveJob(ctx, "paused", why);
    return;
  }
  j.bakeUntil = null;
  moveJob(ctx, "failed", why);
}

function completeWave(ctx: Ctx): void {
  const j = ctx.job;
  const wave = j.currentWave;
  const hosts = hostsOfWave(j, wave);
  const doneCount = hosts.filter((h) => h.state === "done").length;
  const accepted = hosts.length - doneCount;
  const note = accepted > 0 ? ` (${accepted} failed, accepted by the operator)` : "";
  emit(ctx, {
    kind: "wave-completed",
    wave,
    message: `${waveName(j, wave)} completed: ${doneCount} of ${hosts.length} hosts done${note}`,
  });
  j.phase = "baking";
  // The last wave is not baked: a bake protects the next wave, and after the last there is none.
  if (wave === j.waves.length - 1) {
    j.bakeUntil = null;
    j.reason = null;
    moveJob(ctx, "succeeded", "every wave completed");
    return;
  }
  j.bakeUntil = ctx.now + j.strategy.bakeMs;
  emit(ctx, {
    kind: "bake-started",
    wave,
    message: `baking wave ${wave} for ${formatDuration(j.strategy.bakeMs)}`,
  });
}

function startWave(ctx: Ctx, wave: number): void {
  const j = ctx.job;
  j.currentWave = wave;
  j.phase = "updating";
  j.bakeUntil = null;
  const size = j.waves[wave]?.length ?? 0;
  emit(ctx, { kind: "wave-started", wave, message: `wave ${wave} started: ${size} hosts` });
}

/**
 * Start pending hosts of the current wave while fewer than maxUnavailable of its hosts are in flight.
 * A host whose turn came while it is offline gets `deadline` to come online, then fails; one outside its
 * maintenance window waits for it (a reason says until when) and takes no slot.
 */
function startHosts(ctx: Ctx): void {
  const j = ctx.job;
  const hosts = hostsOfWave(j, j.currentWave);
  const limit = batchSize(j.strategy.maxUnavailable, Object.keys(j.hosts).length);
  let busy = hosts.filter((h) => IN_FLIGHT_HOST_STATES.includes(h.state)).length;
  for (const host of hosts) {
    if (busy >= limit) break;
    if (host.state !== "pending") continue;
    const obs = observed(ctx, host.hostId);
    const opensAt = windowWaitUntil(obs.windows, ctx.now);
    if (opensAt !== null) {
      // Outside its maintenance window a host waits without an offline clock: waiting is not failing.
      host.deadlineAt = null;
      const why = windowWaitReason(opensAt);
      if (host.reason !== why) {
        host.reason = why;
        emit(ctx, {
          kind: "host-state",
          hostId: host.hostId,
          wave: host.wave,
          message: `host ${host.hostId}: ${why}`,
        });
      }
      continue;
    }
    if (obs.online) {
      host.reason = null;
      host.startedAt = ctx.now;
      host.deadlineAt = ctx.now + j.strategy.commandTimeoutMs + COMMAND_REPORT_GRACE_MS;
      moveHost(ctx, host, "running-command");
      busy += 1;
    } else if (host.deadlineAt === null) {
      host.deadlineAt = ctx.now + j.strategy.deadlineMs;
    } else if (ctx.now >= host.deadlineAt) {
      const within = formatDuration(j.strategy.deadlineMs);
      deadlineEvent(ctx, host, `host ${host.hostId} was offline for ${within} when its turn came`);
      failHost(ctx, host, `offline for ${within} when its turn came`);
      // A failure stops the waves at once: no other host starts in this step.
      advance(ctx);
      return;
    }
  }
  // Hosts that wait for a slot do not wait for being offline: their clock starts when a slot is theirs.
  for (const host of hosts)
    if (host.state === "pending" && busy >= limit && host.deadlineAt !== null) host.deadlineAt = null;
}

/** No host starts now: pending hosts' offline clocks do not run. */
function clearWaitingDeadlines(ctx: Ctx): void {
  for (const host of allHosts(ctx.job)) if (host.state === "pending") host.deadlineAt = null;
}

/** The earliest clock that can change the outcome: bake end, host deadlines, minHealthy reached. */
function nextWakeAt(ctx: Ctx): number | null {
  const j = ctx.job;
  if (isSettledHostUpdate(j)) return null;
  const clocks: number[] = [];
  if (j.state === "running" && j.phase === "baking" && j.bakeUntil !== null) clocks.push(j.bakeUntil);
  // A pending host of the current wave waiting for its maintenance window starts when it opens.
  if (j.state === "running" && j.phase === "updating")
    for (const host of hostsOfWave(j, j.currentWave)) {
      const opensAt =
        host.state === "pending" ? windowWaitUntil(observed(ctx, host.hostId).windows, ctx.now) : null;
      if (opensAt !== null) clocks.push(opensAt);
    }
  for (const host of Object.values(j.hosts)) {
    if (host.deadlineAt !== null) clocks.push(host.deadlineAt);
    if (host.state === "verifying") {
      const at = healthyAt(host, observed(ctx, host.hostId), j.strategy.minHealthyMs);
      if (at !== null) clocks.push(at);
    }
  }
  const future = clocks.filter((t) => t > ctx.now);
  return future.length === 0 ? null : Math.min(...future);
}
