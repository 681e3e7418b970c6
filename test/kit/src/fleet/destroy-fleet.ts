import { resolve } from "node:path";
import { readFleetState } from "./fleet-state.js";
import { stopFleetProcesses, teardownFleetSync } from "./teardown.js";

/** The error for a teardown that left something: one line per problem (each with its fix), then what to run. */
export function notDestroyedError(
  id: string,
  dir: string,
  problems: readonly string[],
  again: string,
): Error {
  return new Error(
    [
      `fleet ${id} was not fully destroyed (${dir} is left in place):`,
      ...problems.map((p) => `  - ${p}`),
      `when that is done, run ${again} again: it goes on from where it stopped`,
    ].join("\n"),
  );
}

/**
 * Clean up the fleet in dir from its state file alone (another process made it: `quickstart down`, or
 * a run that was killed). Nothing to do when there is no state file. `again` names the command that
 * resumes it, for the error when something could not be undone.
 */
export async function destroyFleetAt(
  dir: string,
  options: { log?: (line: string) => void; again?: string } = {},
): Promise<void> {
  const log = options.log ?? (() => undefined);
  const state = readFleetState(resolve(dir));
  if (!state) return;
  if (state.dir !== resolve(dir)) throw new Error(`${dir}/fleet.json describes a fleet in ${state.dir}`);
  log(`destroying fleet ${state.id} in ${state.dir}`);
  await stopFleetProcesses(state, log);
  const problems = teardownFleetSync(state, log);
  if (problems.length > 0)
    throw notDestroyedError(state.id, state.dir, problems, options.again ?? `destroyFleetAt("${state.dir}")`);
}
