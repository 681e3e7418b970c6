import { existsSync } from "node:fs";
import type { FleetState } from "./fleet-state.js";
import { linkNames, loopDevicesUnder, mountsUnder } from "./host-footprint.js";
import { listNetns } from "./network.js";
import { readProcStat } from "./process-record.js";

/**
 * What of a fleet is still on this machine, as readable lines; [] when it was undone completely:
 * namespaces, links (bridge, veths), mounts and loop devices under its dir, its recorded processes,
 * and the dir itself. Read the state before destroying the fleet, then check after.
 */
export async function fleetLeftovers(made: Pick<FleetState, "id" | "dir" | "processes">): Promise<string[]> {
  const { id, dir } = made;
  const out: string[] = [];
  for (const netns of await listNetns()) if (netns.startsWith(`gild-${id}-`)) out.push(`netns ${netns}`);
  for (const link of linkNames()) if (link.includes(id)) out.push(`link ${link}`);
  for (const mountPoint of mountsUnder(dir)) out.push(`mount ${mountPoint}`);
  for (const device of loopDevicesUnder(dir)) out.push(`loop device ${device}`);
  for (const p of made.processes) {
    const stat = readProcStat(p.pid);
    // The same process (pid and start time), not a zombie: PID 1 here may never reap orphans.
    if (stat && stat.state !== "Z" && stat.state !== "X" && stat.startTicks === p.startTicks)
      out.push(`process ${p.role} (pid ${p.pid})`);
  }
  if (existsSync(dir)) out.push(`dir ${dir}`);
  return out;
}
