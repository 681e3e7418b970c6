import { constants } from "node:os";
import { buildNspawnArgs } from "./nspawn-args.js";
import type { ContainerSpec, ContainerStatus } from "./types.js";

// Pure parts of the systemd driver: unit names, systemd-run arguments, and the parsing of systemctl
// output. Kept apart so they can be tested on machines where systemd is not PID 1.

const UNIT_PREFIX = "gild-app-";
const UNIT_RE = /^gild-app-([a-z][a-z0-9-]{0,62})-([1-9][0-9]*)\.service$/;

/** How long a killed container may take to end before every process of its unit gets SIGKILL. */
export const KILL_GRACE_MS = 5_000;

/** The transient unit that runs one app generation. */
export function unitName(app: string, generation: number): string {
  return `${UNIT_PREFIX}${app}-${generation}.service`;
}

/** The glob that matches every gild app unit, for `systemctl list-units`. */
export const UNIT_GLOB = `${UNIT_PREFIX}*`;

/** (app, generation) of a gild app unit name, or undefined for any other unit. */
export function parseUnitName(unit: string): { app: string; generation: number } | undefined {
  // The generation is the last '-digits' group; app names may themselves end in '-digits'.
  const match = UNIT_RE.exec(unit);
  if (!match) return undefined;
  return { app: match[1] as string, generation: Number(match[2]) };
}

/**
 * `systemd-run` arguments that run nspawn as a transient service:
 * - Type=notify: nspawn reports READY once the container's init runs, so systemd-run returns then.
 * - KillMode=mixed: SIGTERM to nspawn only (it forwards it to the container's init). Delegate=yes:
 *   nspawn manages its cgroup subtree.
 * - TimeoutStopFailureMode=abort with WatchdogSignal=SIGTERM: when the stop timeout passes, systemd
 *   sends nspawn a second SIGTERM, on which nspawn kills the container's init and exits 1, as the
 *   process driver's kill ends it; so a container stopped by systemd alone (no agent, a shutdown) ends
 *   the same way. TimeoutAbortSec: SIGKILL to every process of the unit should nspawn hang even then.
 * - No --collect: a unit that failed stays loaded, with its exit code, until the driver has read it and
 *   runs `systemctl reset-failed` (with --collect, systemd unloads it at once and the code is lost).
 */
export function buildSystemdRunArgs(
  spec: ContainerSpec,
  machine: string,
  options: { startTimeoutMs: number },
): string[] {
  const millis = (ms: number) => `${Math.max(1, Math.ceil(ms))}ms`;
  return [
    `--unit=${unitName(spec.app, spec.generation)}`,
    `--description=gild app ${spec.app} generation ${spec.generation}`,
    "--quiet",
    "--property=Type=notify",
    "--property=KillMode=mixed",
    "--property=Delegate=yes",
    "--property=KillSignal=SIGTERM",
    `--property=TimeoutStartSec=${millis(options.startTimeoutMs)}`,
    `--property=TimeoutStopSec=${millis(spec.stopTimeoutMs)}`,
    "--property=TimeoutStopFailureMode=abort",
    "--property=WatchdogSignal=SIGTERM",
    `--property=TimeoutAbortSec=${millis(KILL_GRACE_MS)}`,
    `--property=StandardOutput=append:${spec.logFile}`,
    `--property=StandardError=append:${spec.logFile}`,
    "--",
    "systemd-nspawn",
    ...buildNspawnArgs(spec, machine),
  ];
}

/** The properties `systemctl show` is asked for. */
export const SHOW_PROPERTIES = [
  "LoadState",
  "ActiveState",
  "SubState",
  "Result",
  "MainPID",
  "ExecMainCode",
  "ExecMainStatus",
  "ExecMainStartTimestampMonotonic",
  "TimeoutStopUSec",
] as const;

export interface UnitState {
  loaded: boolean;
  activeState: string;
  subState: string;
  result: string;
  mainPid: number | null;
  /** Exit code of the main process when it exited normally, else null. */
  exitCode: number | null;
  /** Signal that killed the main process, else null. */
  signal: string | null;
  /** CLOCK_MONOTONIC microseconds when the main process started, or null. */
  startedMonotonicUs: number | null;
  /** The unit's stop timeout in ms, or null when unknown or infinite. */
  stopTimeoutMs: number | null;
}

// siginfo codes systemd reports in ExecMainCode.
const CLD_EXITED = 1;
const CLD_KILLED = 2;
const CLD_DUMPED = 3;

function signalName(signo: number): string {
  const entry = Object.entries(constants.signals).find(([, value]) => value === signo);
  return entry ? entry[0] : `signal ${signo}`;
}

/** Parse `systemctl show -p ...` output (NAME=value lines, in any order). */
export function parseSystemctlShow(output: string): UnitState {
  const props = new Map<string, string>();
  for (const line of output.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) props.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const num = (name: string): number | null => {
    const value = props.get(name);
    if (value === undefined || value === "" || !/^\d+$/.test(value)) return null;
    return Number(value);
  };
  const loadState = props.get("LoadState") ?? "not-found";
  const code = num("ExecMainCode") ?? 0;
  const status = num("ExecMainStatus");
  const mainPid = num("MainPID");
  const started = num("ExecMainStartTimestampMonotonic");
  return {
    loaded: loadState === "loaded",
    activeState: props.get("ActiveState") ?? "inactive",
    subState: props.get("SubState") ?? "dead",
    result: props.get("Result") ?? "",
    mainPid: mainPid === null || mainPid === 0 ? null : mainPid,
    exitCode: code === CLD_EXITED ? status : null,
    signal: (code === CLD_KILLED || code === CLD_DUMPED) && status !== null ? signalName(status) : null,
    startedMonotonicUs: started === null || started === 0 ? null : started,
    stopTimeoutMs: parseTimespanMs(props.get("TimeoutStopUSec") ?? ""),
  };
}

const TIMESPAN_UNITS: Record<string, number> = {
  us: 0.001,
  usec: 0.001,
  ms: 1,
  msec: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Parse a systemd timespan as `systemctl show` prints it ("1min 30s", "90s", "500ms"); null if infinite. */
export function parseTimespanMs(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed === "infinity") return null;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) / 1000;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)\s*([a-z]+)/g;
  let consumed = "";
  for (const match of trimmed.matchAll(re)) {
    const factor = TIMESPAN_UNITS[match[2] as string];
    if (factor === undefined) return null;
    total += Number(match[1]) * factor;
    consumed += match[0];
  }
  if (consumed.replace(/\s/g, "") !== trimmed.replace(/\s/g, "")) return null;
  return total;
}

/** The unit is (still) doing something: its processes may be running. */
export function isUnitActive(state: UnitState): boolean {
  return (
    state.loaded &&
    (state.activeState === "active" ||
      state.activeState === "activating" ||
      state.activeState === "deactivating" ||
      state.activeState === "reloading")
  );
}

/**
 * A ContainerStatus from a unit's state. Start times come as CLOCK_MONOTONIC microseconds; they are
 * turned into epoch ms with the two clocks read now (passed in, for tests).
 */
export function unitStatus(
  app: string,
  generation: number,
  state: UnitState,
  now: { realMs: number; monotonicUs: number },
): ContainerStatus {
  const running = isUnitActive(state) && state.mainPid !== null;
  const startedAt =
    state.startedMonotonicUs === null
      ? null
      : Math.round(now.realMs - (now.monotonicUs - state.startedMonotonicUs) / 1000);
  return {
    app,
    generation,
    running,
    pid: running ? state.mainPid : null,
    startedAt,
    exitCode: running ? null : state.exitCode,
    signal: running ? null : state.signal,
  };
}

/** Unit names from `systemctl list-units --all --plain --no-legend --full 'gild-app-*'`. */
export function parseListUnits(output: string): Array<{ unit: string; app: string; generation: number }> {
  const out: Array<{ unit: string; app: string; generation: number }> = [];
  for (const raw of output.split("\n")) {
    // Failed units may carry a leading status mark ("●" or "*") even with --plain.
    const unit = raw.replace(/^[\s●*]+/, "").split(/\s+/)[0] ?? "";
    const id = parseUnitName(unit);
    if (id) out.push({ unit, ...id });
  }
  return out;
}
