import { type MaintenanceWindow, nextWindowOpen } from "./maintenance-window.js";
import type { RolloutRecord } from "./rollout-model.js";
import { isCanaryWave } from "./rollout-rules.js";

/** 100 Mbit/s: a conservative guess for the controller's uplink when nothing was measured yet. */
export const DEFAULT_TRANSFER_BYTES_PER_SECOND = 12_500_000;

/** Seconds from a switch command to the first healthy probe (snapshot, stop, start, probe). */
export const DEFAULT_SWITCH_SECONDS = 15;

/** What the estimate needs besides the rollout: bytes per host and the measured transfer rate. */
export interface TimelineInputs {
  /** Bytes each host has to download (the artifact it will be served); 0 for a host that has the image. */
  bytesByHost: Record<string, number>;
  /** Bytes for a host missing from bytesByHost. Default 0. */
  defaultHostBytes?: number;
  /** Measured send rate of the controller, shared by concurrent transfers; null or absent when unknown. */
  bytesPerSecond?: number | null;
  /** Seconds from a switch to the first healthy probe [15]. */
  switchSeconds?: number;
  /** Effective maintenance windows by host id; a host absent is always open. */
  windows?: Readonly<Record<string, readonly MaintenanceWindow[]>>;
  /** When the rollout would start (ms since the epoch): windows are weekly times, so waits need it [0]. */
  startAt?: number;
}

/** One row of the `gild rollout plan` wave table; seconds from the start of the rollout. */
export interface TimelineWave {
  wave: number;
  hosts: string[];
  canary: boolean;
  /** Bytes the wave's hosts download. */
  bytes: number;
  /** Seconds the wave waits for downloads after it starts (0 when prefetch finished them before). */
  transferSeconds: number;
  /** Seconds the wave waits for its hosts' maintenance windows before it switches (the latest opening). */
  windowWaitSeconds: number;
  /** Hosts of the wave whose window is closed when the wave would switch, and when it opens (ms epoch). */
  windowOpensAt: Record<string, number>;
  /** Seconds to switch every host and hold minHealthy, batch after batch of maxParallel. */
  verifySeconds: number;
  /** Bake after the wave: canaryBake after an auto-promoted canary, bake after others, none after the last. */
  bakeSeconds: number;
  /** The rollout waits here for `gild rollout promote`; that wait is not counted. */
  awaitsPromotion: boolean;
  startsAtSecond: number;
  endsAtSecond: number;
}

/** The estimated timeline of a whole rollout. */
export interface Timeline {
  waves: TimelineWave[];
  totalSeconds: number;
}

/**
 * Estimate how long each wave takes, for `gild rollout plan`. The model, all in whole seconds:
 * - Transfers share the controller's uplink: a wave's download takes (sum of its hosts' bytes) / rate.
 *   Downloads run one wave after the other on that link (an approximation of fair sharing).
 * - Without prefetch a wave downloads when it starts. With prefetch its download starts when the wave
 *   before it starts (as the planner does), after that wave's own download; the wave waits only for
 *   what is left when it starts.
 * - Verify: ceil(hosts / maxParallel) batches, each switchSeconds + minHealthy (a batch starts when the
 *   one before it is healthy). Failures, retries and deadlines are not modelled: this is the good path.
 * - Maintenance windows: a wave's switches wait until the last of its hosts' windows opens (at the time
 *   the wave would switch); its verify time runs after that. Prefetch is not held back by windows.
 * - Bake: canaryBake after the canary when promote is auto; a manual promotion is an operator wait,
 *   flagged and not counted. bake after other waves; none after the last (the planner skips it).
 */
export function estimateTimeline(rollout: RolloutRecord, inputs: TimelineInputs): Timeline {
  const { strategy } = rollout;
  const measured = inputs.bytesPerSecond;
  const rate =
    measured !== null && measured !== undefined && Number.isFinite(measured) && measured > 0
      ? measured
      : DEFAULT_TRANSFER_BYTES_PER_SECOND;
  const switchSeconds = inputs.switchSeconds ?? DEFAULT_SWITCH_SECONDS;
  const minHealthySeconds = Math.ceil(strategy.minHealthyMs / 1000);

  const waves: TimelineWave[] = [];
  let previousStart = 0;
  let previousTransferEnd = 0;
  let clock = 0;
  rollout.waves.forEach((hosts, wave) => {
    const canary = isCanaryWave(rollout, wave);
    const last = wave === rollout.waves.length - 1;
    const bytes = hosts.reduce(
      (sum, id) => sum + (inputs.bytesByHost[id] ?? inputs.defaultHostBytes ?? 0),
      0,
    );
    const transfer = Math.ceil(bytes / rate);
    const start = clock;
    const transferStart =
      strategy.prefetch && wave > 0
        ? Math.max(previousStart, previousTransferEnd)
        : Math.max(start, previousTransferEnd);
    const transferEnd = transferStart + transfer;
    const deployStart = Math.max(start, transferEnd);
    const switchAt = (inputs.startAt ?? 0) + deployStart * 1000;
    const windowOpensAt: Record<string, number> = {};
    let windowWait = 0;
    for (const id of hosts) {
      const windows = inputs.windows?.[id];
      if (windows === undefined || windows.length === 0) continue;
      const opens = nextWindowOpen(windows, switchAt);
      if (opens <= switchAt) continue;
      windowOpensAt[id] = opens;
      windowWait = Math.max(windowWait, Math.ceil((opens - switchAt) / 1000));
    }
    const batches = Math.ceil(hosts.length / (strategy.maxParallel ?? Math.max(1, hosts.length)));
    const verify = batches * (switchSeconds + minHealthySeconds);
    const awaitsPromotion = canary && !last && strategy.promote === "manual";
    let bake = 0;
    if (!last && !awaitsPromotion)
      bake = Math.ceil((canary ? strategy.canaryBakeMs : strategy.bakeMs) / 1000);
    clock = deployStart + windowWait + verify + bake;
    waves.push({
      wave,
      hosts: [...hosts],
      canary,
      bytes,
      transferSeconds: deployStart - start,
      windowWaitSeconds: windowWait,
      windowOpensAt,
      verifySeconds: verify,
      bakeSeconds: bake,
      awaitsPromotion,
      startsAtSecond: start,
      endsAtSecond: clock,
    });
    previousStart = start;
    previousTransferEnd = transferEnd;
  });
  return { waves, totalSeconds: clock };
}
