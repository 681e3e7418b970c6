import type { FakeHost } from "@gild/testkit";
import { median } from "./stats.js";

/** A rollout as GET /v1/rollouts/:id shows it (the fields the bench reads). */
export interface RolloutView {
  id: string;
  state: string;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  strategy: { bakeMs: number; canaryBakeMs: number; minHealthyMs: number };
  waves: Array<{
    index: number;
    canary: boolean;
    hosts: Array<{ hostId: string; name: string; state: string; healthyAt: number | null }>;
  }>;
}

/** A controller-side rollout event (from its store). */
export interface StoredEventRow {
  at: number;
  kind: string;
  wave: number | null;
  message: string;
}

/** A rollout's command (a switch, deployApp, or a pull) as the controller stored it: when issued, when its result came. */
export interface StoredSwitchRow {
  hostId: string;
  state: string;
  createdAt: number;
  updatedAt: number;
}

/** One wave transition, k -> k+1, timed at the fake agents. */
export interface Transition {
  from: number;
  to: number;
  fromHosts: number;
  toHosts: number;
  /**
   * When wave k's last host had reported healthy on the new version (plus minHealthy), or its bake
   * ended, whichever is later: the moment the controller could start wave k+1. Wall ms.
   */
  triggerAt: number;
  /**
   * From the trigger to the first command the transition caused that reached a host of wave k+1: a
   * switch, or a pull the controller issued once wave k+1 had started (a prefetch pull issued during
   * wave k and still on its way is not the transition's). When none had arrived by the end of the
   * measurement, the time until then (a lower bound: `censored`).
   */
  firstCommandMs: number;
  censored: boolean;
  /** From the trigger to the first / last switch (DeployApp) that reached a host of wave k+1. */
  firstSwitchMs: number;
  lastSwitchMs: number;
  /** From the trigger to the controller's `wave-started` event (its clock: planning began). */
  decisionMs: number;
  /** Hosts of wave k+1 that had their image (pull reported) at the trigger: prefetch done. */
  prefetchedAtTrigger: number;
  /**
   * On the controller's clock alone (no load tool in it): from the last switch result of wave k it
   * recorded to its `wave-started` event for k+1, and to the first switch of wave k+1 it issued.
   */
  controllerDecisionMs: number;
  controllerFirstSwitchMs: number;
}

function lastOf(values: Array<number | null>): number | null {
  let best: number | null = null;
  for (const v of values) {
    if (v === null) return null;
    if (best === null || v > best) best = v;
  }
  return best;
}

/**
 * Time every wave transition from what the fake agents saw: the last healthy report of wave k (or the
 * end of its bake) to the first command, and the switches, of wave k+1.
 */
export function analyseTransitions(
  view: RolloutView,
  hostsByName: Map<string, FakeHost>,
  events: StoredEventRow[],
  endAt: number,
  switches: StoredSwitchRow[] = [],
  /** When the controller issued each of the rollout's pulls (its clock), by command id. */
  pullsIssuedAt: ReadonlyMap<string, number> = new Map(),
): Transition[] {
  const out: Transition[] = [];
  const switchesOf = new Map<string, StoredSwitchRow[]>();
  for (const row of switches) switchesOf.set(row.hostId, [...(switchesOf.get(row.hostId) ?? []), row]);
  const rowsOfWave = (hostIds: string[]) => hostIds.flatMap((id) => switchesOf.get(id) ?? []);
  const completedAt = new Map<number, number>();
  const startedAt = new Map<number, number>();
  for (const e of events) {
    if (e.wave === null) continue;
    if (e.kind === "wave-completed" && !completedAt.has(e.wave)) completedAt.set(e.wave, e.at);
    if (e.kind === "wave-started" && !startedAt.has(e.wave)) startedAt.set(e.wave, e.at);
  }
  for (let k = 0; k + 1 < view.waves.length; k++) {
    const wave = view.waves[k];
    const next = view.waves[k + 1];
    if (!wave || !next) continue;
    const fromHosts = wave.hosts.map((h) => hostsByName.get(h.name));
    const toHosts = next.hosts.map((h) => hostsByName.get(h.name)).filter((h): h is FakeHost => !!h);
    const lastReport = lastOf(fromHosts.map((h) => h?.deployReportedAt ?? null));
    if (lastReport === null) continue;
    const bakeMs = wave.canary ? view.strategy.canaryBakeMs : view.strategy.bakeMs;
    const completed = completedAt.get(k);
    const bakeEnd = bakeMs > 0 && completed !== undefined ? completed + bakeMs : Number.NEGATIVE_INFINITY;
    const triggerAt = Math.max(lastReport + view.strategy.minHealthyMs, bakeEnd);
    let firstCommand = Number.POSITIVE_INFINITY;
    let firstSwitch = Number.POSITIVE_INFINITY;
    let lastSwitch = Number.NEGATIVE_INFINITY;
    let prefetched = 0;
    const started = startedAt.get(k + 1);
    const prefetch = (c: { kind: string; id: string }) => {
      const issuedAt = pullsIssuedAt.get(c.id);
      return c.kind === "pullImage" && issuedAt !== undefined && started !== undefined && issuedAt < started;
    };
    for (const host of toHosts) {
      if (host.pullReportedAt !== null && host.pullReportedAt <= triggerAt) prefetched += 1;
      for (const c of host.received) {
        if (c.at >= triggerAt && c.at < firstCommand && !prefetch(c)) firstCommand = c.at;
        if (c.kind === "deployApp") {
          firstSwitch = Math.min(firstSwitch, c.at);
          lastSwitch = Math.max(lastSwitch, c.at);
        }
      }
    }
    const results = rowsOfWave(wave.hosts.map((h) => h.hostId)).filter((r) => r.state === "succeeded");
    const lastResult = results.length > 0 ? Math.max(...results.map((r) => r.updatedAt)) : Number.NaN;
    const issued = rowsOfWave(next.hosts.map((h) => h.hostId)).map((r) => r.createdAt);
    const firstIssued = issued.length > 0 ? Math.min(...issued) : Number.NaN;
    out.push({
      from: k,
      to: k + 1,
      fromHosts: wave.hosts.length,
      toHosts: next.hosts.length,
      triggerAt,
      firstCommandMs: (Number.isFinite(firstCommand) ? firstCommand : endAt) - triggerAt,
      censored: !Number.isFinite(firstCommand),
      firstSwitchMs: Number.isFinite(firstSwitch) ? firstSwitch - triggerAt : Number.NaN,
      lastSwitchMs: Number.isFinite(lastSwitch) ? lastSwitch - triggerAt : Number.NaN,
      decisionMs: started === undefined ? Number.NaN : started - triggerAt,
      prefetchedAtTrigger: prefetched,
      controllerDecisionMs: started === undefined ? Number.NaN : started - lastResult,
      controllerFirstSwitchMs: firstIssued - lastResult,
    });
  }
  return out;
}

/** A span of times: the first and the last, or null when there were none. */
export interface Span {
  first: number;
  last: number;
}

/** How a wave went on the controller's clock alone, in ms from the rollout's creation. */
export interface WaveTimeline {
  wave: number;
  hosts: number;
  /** Its `wave-started` event (the canary wave starts with the rollout: 0). */
  startedMs: number | null;
  /** When its pulls were issued (a prefetch during the wave before it), and when their results were stored. */
  pullsIssued: Span | null;
  pullsDone: { median: number; last: number } | null;
  /** The same for its switches (deployApp). */
  switchesIssued: Span | null;
  switchesDone: { median: number; last: number } | null;
  completedMs: number | null;
}

function spanOf(values: number[]): Span | null {
  if (values.length === 0) return null;
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    first = Math.min(first, v);
    last = Math.max(last, v);
  }
  return { first, last };
}

function doneOf(values: number[]): { median: number; last: number } | null {
  return values.length === 0 ? null : { median: median(values), last: Math.max(...values) };
}

/**
 * Each wave on the controller's clock, from its stored events and commands: when it started, when its
 * pulls and switches were issued and their results stored, when it completed. Shows what a transition
 * waited for: a next wave whose prefetch was not done when it started waits for its pulls.
 */
export function waveTimelines(
  view: RolloutView,
  events: StoredEventRow[],
  pulls: StoredSwitchRow[],
  switches: StoredSwitchRow[],
): WaveTimeline[] {
  const origin = view.createdAt;
  const waveOf = new Map<string, number>();
  for (const wave of view.waves) for (const host of wave.hosts) waveOf.set(host.hostId, wave.index);
  const startedAt = new Map<number, number>();
  const completedAt = new Map<number, number>();
  for (const e of events) {
    if (e.wave === null) continue;
    if (e.kind === "wave-started" && !startedAt.has(e.wave)) startedAt.set(e.wave, e.at - origin);
    if (e.kind === "wave-completed" && !completedAt.has(e.wave)) completedAt.set(e.wave, e.at - origin);
  }
  const ofWave = (rows: StoredSwitchRow[], wave: number) => rows.filter((r) => waveOf.get(r.hostId) === wave);
  const done = (rows: StoredSwitchRow[]) =>
    rows.filter((r) => r.state === "succeeded" || r.state === "failed").map((r) => r.updatedAt - origin);
  return view.waves.map((wave) => {
    const wavePulls = ofWave(pulls, wave.index);
    const waveSwitches = ofWave(switches, wave.index);
    return {
      wave: wave.index,
      hosts: wave.hosts.length,
      startedMs: startedAt.get(wave.index) ?? (wave.index === 0 ? 0 : null),
      pullsIssued: spanOf(wavePulls.map((r) => r.createdAt - origin)),
      pullsDone: doneOf(done(wavePulls)),
      switchesIssued: spanOf(waveSwitches.map((r) => r.createdAt - origin)),
      switchesDone: doneOf(done(waveSwitches)),
      completedMs: completedAt.get(wave.index) ?? null,
    };
  });
}
