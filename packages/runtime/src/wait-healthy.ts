import { setTimeout as sleep } from "node:timers/promises";
import { type ContainerExec, type ProbeResult, probeOnce } from "./probe-once.js";
import type { ProbeSpec } from "./probe-spec.js";
import { tailFile } from "./tail-file.js";

/** Enough of a ContainerStatus to tell whether the container still runs and how it ended. */
export interface AliveCheck {
  running: boolean;
  exitCode?: number | null;
  signal?: string | null;
}

export interface WaitHealthyOptions {
  /** Absolute epoch ms; not healthy by then is a failure. */
  deadlineAt: number;
  /** Default: the probe's minHealthyMs. */
  minHealthyMs?: number;
  /** Asked before every probe and every `aliveCheckMs` in between: an exited container fails at once. */
  isAlive: () => AliveCheck | Promise<AliveCheck>;
  /** For exec probes. */
  exec?: ContainerExec;
  signal?: AbortSignal;
  /** The container's log: its last lines go into the failure reason. */
  logFile?: string;
  /** Default 20. */
  logLines?: number;
  /** Default 250 ms. */
  aliveCheckMs?: number;
  /** Called with each probe's result as it comes. */
  onProbe?: (result: ProbeResult) => void;
  /** Replaces probeOnce (unit tests of the streak logic). */
  runProbe?: (probe: ProbeSpec, timeoutMs: number) => Promise<ProbeResult>;
}

export type WaitHealthyResult =
  | { ok: true; healthySince: number; last: ProbeResult }
  | {
      ok: false;
      /** Why, for operators: the last probe's result, the exit code if it exited, the log's last lines. */
      reason: string;
      last: ProbeResult | null;
      exited: boolean;
      exitCode: number | null;
    };

/**
 * Probe until the probe held ok for minHealthyMs without a break (a failed probe resets the streak:
 * a flapping app is not progress), or fail when the deadline passes or the container exits.
 * Rejects only when `signal` aborts.
 */
export async function waitHealthy(probe: ProbeSpec, options: WaitHealthyOptions): Promise<WaitHealthyResult> {
  const minHealthyMs = options.minHealthyMs ?? probe.minHealthyMs;
  const aliveCheckMs = options.aliveCheckMs ?? 250;
  const run =
    options.runProbe ??
    ((p: ProbeSpec, timeoutMs: number) =>
      probeOnce(p, { exec: options.exec, timeoutMs, signal: options.signal }));
  let last: ProbeResult | null = null;
  let streakStart: number | null = null;
  let cutOff = false;

  const fail = async (exited: AliveCheck | null): Promise<WaitHealthyResult> => {
    const parts: string[] = [];
    if (exited) {
      const code = exited.exitCode ?? null;
      const how =
        code !== null ? ` with exit code ${code}` : exited.signal ? ` on signal ${exited.signal}` : "";
      parts.push(`the container exited${how} before it was healthy`);
    } else if (streakStart !== null) {
      parts.push(
        `not healthy for ${minHealthyMs} ms by the deadline (healthy for ${Date.now() - streakStart} ms)`,
      );
    } else {
      parts.push("not healthy by the deadline");
    }
    parts.push(
      last ? `last probe ${last.ok ? "ok" : "failed"}: ${last.detail}` : "no probe ran before it ended",
    );
    if (cutOff) parts.push("a probe still waiting for its answer was cut off by the deadline");
    let reason = parts.join("; ");
    if (options.logFile) {
      const tail = await tailFile(options.logFile, options.logLines ?? 20);
      reason += tail ? `\nlast lines of ${options.logFile}:\n${tail}` : `\n${options.logFile} is empty`;
    }
    return { ok: false, reason, last, exited: exited !== null, exitCode: exited?.exitCode ?? null };
  };

  /** Wait until `until`, checking the container meanwhile; returns its status if it exited. */
  const pause = async (until: number): Promise<AliveCheck | null> => {
    for (;;) {
      const left = Math.min(until, options.deadlineAt) - Date.now();
      if (left <= 0) return null;
      await sleep(Math.min(left, aliveCheckMs), undefined, { signal: options.signal }).catch(
        (err: unknown) => {
          // The timer rejects with a generic AbortError: rethrow the caller's own reason instead.
          options.signal?.throwIfAborted();
          throw err;
        },
      );
      const alive = await options.isAlive();
      if (!alive.running) return alive;
    }
  };

  options.signal?.throwIfAborted();
  const delayed = await pause(Date.now() + probe.initialDelayMs);
  if (delayed) return fail(delayed);
  for (;;) {
    options.signal?.throwIfAborted();
    const alive = await options.isAlive();
    if (!alive.running) return fail(alive);
    const left = options.deadlineAt - Date.now();
    if (left <= 0) return fail(null);
    const budget = Math.min(probe.timeoutMs, left);
    const result = await run(probe, budget);
    options.signal?.throwIfAborted();
    options.onProbe?.(result);
    // A probe the deadline cut short says only "no answer in the few ms left": the reason keeps the
    // previous, complete result instead. Its budget was all the time left, so this is the deadline.
    // Timers and Date.now() round to whole ms: a probe that used its budget may show 1 ms less, and
    // looping on could start one more probe of ~1 ms.
    if (!result.ok && budget < probe.timeoutMs && result.durationMs >= budget - 1 && last !== null) {
      cutOff = true;
      return fail(null);
    }
    last = result;
    if (result.ok) {
      streakStart ??= result.at;
      if (result.at - streakStart >= minHealthyMs)
        return { ok: true, healthySince: streakStart, last: result };
    } else {
      streakStart = null;
    }
    const exited = await pause(result.at + probe.intervalMs);
    if (exited) return fail(exited);
  }
}
