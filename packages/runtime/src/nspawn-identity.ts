import { basename } from "node:path";
import { machineName } from "./machine-name.js";
import type { PidRecord } from "./pid-file.js";
import { isProcessAlive, readCmdline } from "./proc.js";

/**
 * Is the process a pid file names really that container's nspawn? Alive, started at the recorded time
 * (so a reused pid does not pass), running systemd-nspawn with the recorded machine name, and the
 * name is the one this run directory gives that app generation (so a file copied from elsewhere does
 * not pass either). Returns the reason when it is not.
 */
export async function checkNspawnIdentity(record: PidRecord, runDir: string): Promise<string | undefined> {
  if (record.machine !== machineName(record.app, record.generation, runDir)) {
    return `machine name ${record.machine} is not the one for ${record.app} generation ${record.generation}`;
  }
  if (!(await isProcessAlive(record.pid, record.startTime))) {
    return `pid ${record.pid} is gone or is another process (start time differs)`;
  }
  const argv = await readCmdline(record.pid);
  if (argv === null || argv.length === 0 || basename(argv[0] as string) !== "systemd-nspawn") {
    return `pid ${record.pid} is not systemd-nspawn`;
  }
  if (!argv.includes(`--machine=${record.machine}`)) {
    return `pid ${record.pid} is systemd-nspawn for another machine`;
  }
  return undefined;
}
