// Stopping a fleet's processes: the recorded ones, and those found by what they are (fleet-processes.ts).
import { waitFor } from "../wait.js";
import { type FleetScope, type FoundProcess, findFleetProcesses } from "./fleet-processes.js";
import type { FleetState } from "./fleet-state.js";
import { loopDevicesUnder, ownedPaths } from "./host-footprint.js";
import { nspawnFiles, removeNspawnFiles } from "./nspawn-files.js";
import { describeProcess, type ProcInfo } from "./proc-scan.js";
import {
  groupMembers,
  isRunning,
  type ProcessRecord,
  readProcStat,
  signalRecorded,
  waitSync,
} from "./process-record.js";

const EXIT_DEADLINE_MS = 10_000;

/** What finds the fleet's processes besides its records: its own paths, namespaces and loop devices. */
export function fleetScope(state: FleetState): FleetScope {
  const paths = ownedPaths(state);
  return { paths, netns: state.netns, loops: paths.flatMap(loopDevicesUnder) };
}

/** Something to stop: a recorded process, or one found by what it is. */
interface Target {
  label: string;
  pid: number;
  alive: () => boolean;
  signal: (signal: NodeJS.Signals) => boolean;
}

function recordTarget(record: ProcessRecord): Target {
  return {
    label: `${record.role} (pid ${record.pid})`,
    pid: record.pid,
    alive: () => isRunning(record),
    signal: (signal) => signalRecorded(record, signal),
  };
}

/** A process found by pid and start time: a pid reused meanwhile by another program is never signalled. */
function foundTarget(p: Pick<ProcInfo, "pid" | "startTicks">, label: string): Target {
  const alive = () => {
    const stat = readProcStat(p.pid);
    return stat !== undefined && stat.state !== "Z" && stat.state !== "X" && stat.startTicks === p.startTicks;
  };
  return {
    label,
    pid: p.pid,
    alive,
    signal: (signal) => {
      if (!alive()) return false;
      try {
        process.kill(p.pid, signal);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
        throw err;
      }
    },
  };
}

/** The fleet's processes that no record names (fleet-processes.ts). */
function unrecorded(state: FleetState, alsoKnown: readonly number[] = []): FoundProcess[] {
  const known = new Set([...state.processes.map((p) => p.pid), ...alsoKnown]);
  return findFleetProcesses(fleetScope(state)).filter((f) => !known.has(f.info.pid));
}

/**
 * Ask the fleet's processes to stop (agents first, then the controller) and wait for them with a
 * deadline; the synchronous teardown SIGKILLs whatever is left. Besides the recorded processes this
 * stops those found by the fleet's paths: a controller started again by hand with the same command line
 * is in no record. What runs in the fleet's namespaces (apps, containers) is left to the teardown, as
 * before. For the orderly path (destroy, destroyFleetAt).
 */
export async function stopFleetProcesses(state: FleetState, log: (line: string) => void): Promise<void> {
  const agents = () => state.processes.filter((p) => p.role !== "controller").map(recordTarget);
  const rest = () => [
    ...state.processes.filter((p) => p.role === "controller").map(recordTarget),
    ...unrecorded(state)
      .filter((f) => !f.inNetns)
      .map((f) => foundTarget(f.info, `${describeProcess(f.info)}, found because ${f.why}`)),
  ];
  for (const group of [agents, rest]) {
    const running = group().filter((t) => t.signal("SIGTERM"));
    if (running.length === 0) continue;
    log(`stopping ${running.map((t) => t.label).join("; ")}`);
    try {
      await waitFor(() => running.every((t) => !t.alive()), {
        timeoutMs: EXIT_DEADLINE_MS,
        intervalMs: 25,
        what: `exit of ${running.map((t) => `pid ${t.pid}`).join(", ")}`,
      });
    } catch {
      // Did not stop on SIGTERM within the deadline: the synchronous teardown kills it next.
      const stubborn = running.filter((t) => t.alive());
      log(`${stubborn.map((t) => `pid ${t.pid}`).join(", ")} ignored SIGTERM: killing`);
    }
  }
}

/**
 * SIGKILL every process of the fleet: the recorded ones, what is left in their process groups, and what
 * is found by the fleet's paths and namespaces (fleet-processes.ts); returns a problem line for each
 * that is still there after the deadline.
 */
export function killFleetProcesses(state: FleetState, log: (line: string) => void): string[] {
  const recorded = state.processes.map(recordTarget);
  for (const t of recorded) if (t.signal("SIGKILL")) log(`killed ${t.label}`);
  const strays = state.processes.flatMap(groupMembers).flatMap((pid) => {
    const stat = readProcStat(pid);
    return stat ? [foundTarget({ pid, startTicks: stat.startTicks }, `pid ${pid}`)] : [];
  });
  const found = unrecorded(
    state,
    strays.map((t) => t.pid),
  );
  const inNetns = found.filter((f) => f.inNetns);
  if (inNetns.length > 0) log(`killing ${inNetns.length} processes left in the namespaces`);
  // Containers the agents left running: killed, their nspawn cannot remove what it made under /run.
  const nspawned = found.flatMap((f) => nspawnFiles(f.info));
  const targets = [
    ...strays,
    ...found.map((f) => {
      const label = describeProcess(f.info);
      if (!f.inNetns) log(`killing ${label}: ${f.why}`);
      return foundTarget(f.info, label);
    }),
  ];
  for (const t of targets) t.signal("SIGKILL");
  const all = [...recorded, ...targets];
  if (waitSync(() => all.every((t) => !t.alive()), EXIT_DEADLINE_MS)) {
    removeNspawnFiles(nspawned);
    return [];
  }
  return all
    .filter((t) => t.alive())
    .map((t) => {
      const procState = readProcStat(t.pid)?.state ?? "?";
      const waiting = procState === "D" ? ": waiting in the kernel, for I/O" : "";
      return `${t.label} is still running ${EXIT_DEADLINE_MS / 1000} s after SIGKILL (state ${procState}${waiting}); fix: wait until it has ended (cat /proc/${t.pid}/stack shows where it waits)`;
    });
}
