import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tryRunSync } from "../host-commands.js";
import { FLEET_STATE_FILE, type FleetState, writeFleetState } from "./fleet-state.js";
import { linkNames, ownedPaths } from "./host-footprint.js";
import { undoPools } from "./pool-undo.js";
import {
  groupMembers,
  isRunning,
  ownChildrenNamed,
  type ProcessRecord,
  pidAlive,
  signalRecorded,
  waitGone,
  waitSync,
} from "./process-record.js";

const EXIT_DEADLINE_MS = 10_000;
/** Programs the fleet runs while making things (command names as /proc/<pid>/comm shows them). */
const IN_FLIGHT_COMMANDS = ["ip", "mount", "losetup", "mkfs.btrfs", "truncate"];

/** Pids in a network namespace (`ip netns pids`), none when it is gone. */
function netnsPids(netns: string): number[] {
  const result = tryRunSync("ip", ["netns", "pids", netns]);
  if (!result.ok) return [];
  return result.output
    .split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/**
 * Ask the recorded processes to stop (agents first, then the controller) and wait for them with a
 * deadline; SIGKILL whatever is left. For the orderly path (destroy, destroyFleetAt).
 */
export async function stopRecordedProcesses(state: FleetState, log: (line: string) => void): Promise<void> {
  const agents = state.processes.filter((p) => p.role !== "controller");
  const controller = state.processes.filter((p) => p.role === "controller");
  for (const group of [agents, controller]) {
    const running = group.filter((p) => signalRecorded(p, "SIGTERM"));
    if (running.length === 0) continue;
    log(`stopping ${running.map((p) => `${p.role} (pid ${p.pid})`).join(", ")}`);
    try {
      await waitGone(running, EXIT_DEADLINE_MS);
    } catch {
      // Did not stop on SIGTERM within the deadline: the synchronous teardown kills it next.
      log(
        `${running
          .filter(isRunning)
          .map((p) => p.role)
          .join(", ")} ignored SIGTERM: killing`,
      );
    }
  }
}

/**
 * Undo everything the state lists, synchronously (it also runs from exit and signal handlers):
 * processes, processes left in the namespaces, namespaces, veths, bridge, mounts, loop devices, then
 * the dir if the fleet made it. Each step is idempotent; entries are dropped from the state as they
 * are undone and the state file is rewritten, so an interrupted undo can be resumed. Returns what could
 * not be undone, each with what holds it and how to fix it.
 */
export function teardownFleetSync(state: FleetState, log: (line: string) => void): string[] {
  const problems: string[] = [];
  const save = () => {
    if (existsSync(join(state.dir, FLEET_STATE_FILE))) writeFleetState(state);
  };

  // 0. Host commands still in flight (an interrupt arrives between two steps of making): let them
  // finish first, or a mount or loop device they make would land after its undo.
  const inFlight = ownChildrenNamed(IN_FLIGHT_COMMANDS);
  if (inFlight.length > 0) waitSync(() => inFlight.every((p) => !pidAlive(p)), 5_000);

  // 1. Recorded processes, and anything still in their process groups (children they left behind).
  const recorded: ProcessRecord[] = [...state.processes];
  const strays: number[] = [];
  for (const record of recorded) {
    if (signalRecorded(record, "SIGKILL")) log(`killed ${record.role} (pid ${record.pid})`);
    strays.push(...groupMembers(record));
  }
  for (const pid of strays) killPid(pid);
  if (
    !waitSync(
      () => recorded.every((r) => !isRunning(r)) && strays.every((p) => !pidAlive(p)),
      EXIT_DEADLINE_MS,
    )
  )
    problems.push(
      `processes still running: ${recorded.filter(isRunning).map((r) => r.pid)} ${strays.filter(pidAlive)}`,
    );
  state.processes = state.processes.filter(isRunning);
  save();

  // 2. Processes still inside the namespaces (apps, containers, exec leftovers): they are ours.
  const inside = state.netns.flatMap(netnsPids);
  if (inside.length > 0) {
    log(`killing ${inside.length} processes left in the namespaces`);
    for (const pid of inside) killPid(pid);
    if (!waitSync(() => inside.every((p) => !pidAlive(p)), EXIT_DEADLINE_MS))
      problems.push(`processes in the namespaces still running: ${inside.filter(pidAlive).join(" ")}`);
  }

  // 3. Namespaces; their veth ends go with them (the kernel frees a namespace asynchronously).
  for (const netns of [...state.netns]) {
    const result = tryRunSync("ip", ["netns", "del", netns]);
    if (result.ok || /No such file/i.test(result.output))
      state.netns = state.netns.filter((n) => n !== netns);
    else
      problems.push(
        `ip netns del ${netns} failed: ${result.output.trim()}; fix: ip netns pids ${netns} lists what is still in it`,
      );
  }
  save();

  // 4. Veths (root ends) still there, then the bridge; wait until the kernel has let them all go.
  const links = [...state.veths, ...(state.bridge ? [state.bridge] : [])];
  const present = new Set(linkNames());
  for (const link of links) {
    if (!present.has(link)) continue;
    const result = tryRunSync("ip", ["link", "del", link]);
    if (!result.ok && !/Cannot find device/i.test(result.output))
      problems.push(`ip link del ${link} failed: ${result.output.trim()}`);
  }
  if (!waitSync(() => !linkNames().some((n) => links.includes(n)), EXIT_DEADLINE_MS))
    problems.push(
      `links still present: ${linkNames()
        .filter((n) => links.includes(n))
        .join(", ")}; fix: ip link del <name> for each`,
    );
  else {
    state.veths = [];
    state.bridge = null;
  }
  save();

  // 5. Mounts and loop devices under the fleet's own paths.
  const pools = undoPools(state, log);
  problems.push(...pools.problems);
  if (pools.gone) state.pools = [];
  save();

  // 6. The files: the whole dir if the fleet made it, else only what it put there.
  if (problems.length === 0) {
    for (const path of state.ownDir ? [state.dir] : [...ownedPaths(state), join(state.dir, FLEET_STATE_FILE)])
      rmSync(path, { recursive: true, force: true });
  } else {
    log(`left ${state.dir} in place`);
  }
  return problems;
}
