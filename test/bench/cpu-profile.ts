import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";

/** The parts of a V8 .cpuprofile (node --cpu-prof) the summary reads. */
interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }>;
  /** Microseconds, on the profiled process's monotonic clock. */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  ms: number;
  share: number;
}

/**
 * Contiguous stretches of samples whose stack holds a function: for a synchronous function (the
 * executor's evaluate), each stretch is one call, so this counts calls and times each one.
 */
export interface CallRuns {
  name: string;
  runs: number;
  medianMs: number;
  p90Ms: number;
  maxMs: number;
  totalMs: number;
}

export interface ProfileSummary {
  file: string;
  runs: CallRuns[];
  windowMs: number;
  sampledMs: number;
  idleMs: number;
  topSelf: ProfileRow[];
  topInclusive: ProfileRow[];
}

function frameName(frame: CpuProfile["nodes"][number]["callFrame"]): string {
  const file = frame.url ? basename(frame.url) : "";
  return `${frame.functionName || "(anonymous)"}${file ? ` ${file}:${frame.lineNumber + 1}` : ""}`;
}

/** The newest .cpuprofile in a directory, if any. */
export function newestProfile(dir: string): string | undefined {
  try {
    // The main thread's (thread id 0: CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile), not a worker's
    // (the PostgreSQL store's has its own).
    return readdirSync(dir)
      .filter((f) => /\.0\.\d+\.cpuprofile$/.test(f))
      .sort()
      .map((f) => join(dir, f))
      .at(-1);
  } catch {
    return undefined;
  }
}

/**
 * Self and inclusive time per function, over the samples between two offsets from the profile's start
 * (ms). Inclusive time counts a function once per sample however deep it recurses. Frames inside
 * node_modules and node: internals are kept (SQLite and JSON time show up under their callers).
 * `runsOf` names functions to time call by call (see CallRuns).
 */
export function summarizeProfile(
  file: string,
  fromMs = 0,
  toMs = Number.POSITIVE_INFINITY,
  top = 25,
  runsOf: readonly string[] = [],
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const parent = new Map<number, number>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let t = 0;
  let sampled = 0;
  let idle = 0;
  const open = new Map<string, number>();
  const runs = new Map<string, number[]>(runsOf.map((name) => [name, []]));
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    t += delta;
    if (t < fromMs || t > toMs) continue;
    const nodeId = profile.samples[i] as number;
    const node = byId.get(nodeId);
    if (!node) continue;
    sampled += delta;
    const leaf = node.callFrame.functionName;
    if (leaf === "(idle)") {
      idle += delta;
      for (const name of runsOf) closeRun(name);
      continue;
    }
    // Garbage collection and native work have no JS stack: they belong to the call that was running.
    if (leaf === "(program)" || leaf === "(garbage collector)") {
      for (const [name, ms] of open) open.set(name, ms + delta);
      if (leaf === "(program)") continue;
    }
    const leafName = frameName(node.callFrame);
    self.set(leafName, (self.get(leafName) ?? 0) + delta);
    const seen = new Set<string>();
    const onStack = new Set<string>();
    for (let id: number | undefined = nodeId; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id);
      if (!frame) break;
      const name = frameName(frame.callFrame);
      onStack.add(frame.callFrame.functionName);
      if (seen.has(name) || name.startsWith("(root)")) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + delta);
    }
    for (const name of runsOf) {
      if (onStack.has(name)) open.set(name, (open.get(name) ?? 0) + delta);
      else closeRun(name);
    }
  }
  for (const name of runsOf) closeRun(name);
  function closeRun(name: string): void {
    const ms = open.get(name);
    if (ms === undefined) return;
    runs.get(name)?.push(ms);
    open.delete(name);
  }
  const rows = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms, share: sampled > 0 ? ms / sampled : 0 }));
  const callRuns = runsOf.map((name): CallRuns => {
    const list = [...(runs.get(name) ?? [])].sort((a, b) => a - b);
    const at = (q: number) => list[Math.min(list.length - 1, Math.floor(q * list.length))] ?? Number.NaN;
    return {
      name,
      runs: list.length,
      medianMs: at(0.5),
      p90Ms: at(0.9),
      maxMs: list.at(-1) ?? Number.NaN,
      totalMs: list.reduce((a, b) => a + b, 0),
    };
  });
  return {
    file,
    runs: callRuns,
    windowMs: Math.min(toMs, (profile.endTime - profile.startTime) / 1000) - fromMs,
    sampledMs: sampled,
    idleMs: idle,
    topSelf: rows(self),
    topInclusive: rows(inclusive),
  };
}
