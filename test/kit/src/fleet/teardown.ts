import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tryRunSync } from "../host-commands.js";
import { FLEET_STATE_FILE, type FleetState, writeFleetState } from "./fleet-state.js";
import { killFleetProcesses } from "./fleet-stop.js";
import { linkNames, ownedPaths } from "./host-footprint.js";
import { undoPools } from "./pool-undo.js";
import { isRunning, ownChildrenNamed, pidAlive, waitSync } from "./process-record.js";

export { stopFleetProcesses } from "./fleet-stop.js";

const LINKS_DEADLINE_MS = 10_000;
/** Programs the fleet runs while making things (command names as /proc/<pid>/comm shows them). */
const IN_FLIGHT_COMMANDS = ["ip", "mount", "losetup", "mkfs.btrfs", "truncate"];

/**
 * Undo everything the state lists, synchronously (it also runs from exit and signal handlers):
 * processes (recorded, and found by the fleet's paths and namespaces), namespaces, veths, bridge,
 * mounts, loop devices, then the dir if the fleet made it. Each step is idempotent; entries are dropped
 * from the state as they are undone and the state file is rewritten, so an interrupted undo can be
 * resumed. Returns what could not be undone, each with what holds it and how to fix it.
 */
export function teardownFleetSync(state: FleetState, log: (line: string) => void): string[] {
  const save = () => {
    if (existsSync(join(state.dir, FLEET_STATE_FILE))) writeFleetState(state);
  };

  // 0. Host commands still in flight (an interrupt arrives between two steps of making): let them
  // finish first, or a mount or loop device they make would land after its undo.
  const inFlight = ownChildrenNamed(IN_FLIGHT_COMMANDS);
  if (inFlight.length > 0) waitSync(() => inFlight.every((p) => !pidAlive(p)), 5_000);

  // 1. Processes: recorded, left in their process groups, in the namespaces, found by the fleet's paths.
  const problems = killFleetProcesses(state, log);
  state.processes = state.processes.filter(isRunning);
  // What they leave outside the fleet's dir, named by their pids: theirs only once none runs.
  if (state.processes.length === 0) {
    for (const file of state.sharedMemory ?? []) rmSync(file, { force: true });
    state.sharedMemory = [];
  }
  save();

  // 2. Namespaces; their veth ends go with them (the kernel frees a namespace asynchronously).
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

  // 3. Veths (root ends) still there, then the bridge; wait until the kernel has let them all go.
  const links = [...state.veths, ...(state.bridge ? [state.bridge] : [])];
  const present = new Set(linkNames());
  for (const link of links) {
    if (!present.has(link)) continue;
    const result = tryRunSync("ip", ["link", "del", link]);
    // A veth listed a moment ago may go with its namespace before this runs (the kernel frees the
    // namespace asynchronously): "No such device" then means done, which the wait below checks.
    if (!result.ok && !/Cannot find device|No such device/i.test(result.output))
      problems.push(`ip link del ${link} failed: ${result.output.trim()}`);
  }
  if (!waitSync(() => !linkNames().some((n) => links.includes(n)), LINKS_DEADLINE_MS))
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

  // 4. Mounts and loop devices under the fleet's own paths.
  const pools = undoPools(state, log);
  problems.push(...pools.problems);
  if (pools.gone) state.pools = [];
  save();

  // 5. The files: the whole dir if the fleet made it, else only what it put there.
  if (problems.length === 0) {
    for (const path of state.ownDir ? [state.dir] : [...ownedPaths(state), join(state.dir, FLEET_STATE_FILE)])
      rmSync(path, { recursive: true, force: true });
  } else {
    log(`left ${state.dir} in place`);
  }
  return problems;
}
