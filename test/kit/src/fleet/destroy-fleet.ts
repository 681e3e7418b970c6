import { resolve } from "node:path";
import { readFleetState } from "./fleet-state.js";
import { stopRecordedProcesses, teardownFleetSync } from "./teardown.js";

/**
 * Clean up the fleet in dir from its state file alone (another process made it: `quickstart down`, or
 * a run that was killed). Nothing to do when there is no state file.
 */
export async function destroyFleetAt(
  dir: string,
  options: { log?: (line: string) => void } = {},
): Promise<void> {
  const log = options.log ?? (() => undefined);
  const state = readFleetState(resolve(dir));
  if (!state) return;
  if (state.dir !== resolve(dir)) throw new Error(`${dir}/fleet.json describes a fleet in ${state.dir}`);
  log(`destroying fleet ${state.id} in ${state.dir}`);
  await stopRecordedProcesses(state, log);
  const problems = teardownFleetSync(state, log);
  if (problems.length > 0)
    throw new Error(`fleet ${state.id} was not fully destroyed: ${problems.join("; ")}`);
}
