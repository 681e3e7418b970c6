import { existsSync } from "node:fs";
import { findFleetProcesses } from "./fleet-processes.js";
import type { FleetState } from "./fleet-state.js";
import { linkNames, loopDevicesUnder, mountsUnder } from "./host-footprint.js";
import { listNetns } from "./network.js";
import { nspawnFiles } from "./nspawn-files.js";
import { describeProcess } from "./proc-scan.js";
import { readProcStat } from "./process-record.js";

/**
 * What of a fleet is still on this machine, as readable lines; [] when it was undone completely:
 * namespaces, links (bridge, veths), mounts and loop devices under its dir, its recorded processes and
 * any other process of it (found by its dir, its namespaces or its pools: one started again by hand),
 * the files it recorded outside its dir (libfaketime's), and the dir itself. Read the state before
 * destroying the fleet, then check after.
 */
export async function fleetLeftovers(
  made: Pick<FleetState, "id" | "dir" | "processes"> & Partial<Pick<FleetState, "netns" | "sharedMemory">>,
): Promise<string[]> {
  const { id, dir } = made;
  const out: string[] = [];
  const netns = (await listNetns()).filter((n) => n.startsWith(`gild-${id}-`));
  for (const name of netns) out.push(`netns ${name}`);
  for (const link of linkNames()) if (link.includes(id)) out.push(`link ${link}`);
  for (const mountPoint of mountsUnder(dir)) out.push(`mount ${mountPoint}`);
  const loops = loopDevicesUnder(dir);
  for (const device of loops) out.push(`loop device ${device}`);
  const recorded = new Set<number>();
  for (const p of made.processes) {
    const stat = readProcStat(p.pid);
    // The same process (pid and start time), not a zombie: PID 1 here may never reap orphans.
    if (stat && stat.state !== "Z" && stat.state !== "X" && stat.startTicks === p.startTicks) {
      out.push(`process ${p.role} (pid ${p.pid})`);
      recorded.add(p.pid);
    }
  }
  for (const f of findFleetProcesses({ paths: [dir], netns: [...(made.netns ?? []), ...netns], loops }))
    if (!recorded.has(f.info.pid)) out.push(`process ${describeProcess(f.info)}: ${f.why}`);
  for (const file of made.sharedMemory ?? []) if (existsSync(file)) out.push(`file ${file}`);
  if (existsSync(dir)) out.push(`dir ${dir}`);
  return out;
}

/**
 * What the fleet's running containers made under /run (their nspawns' propagation dirs and root
 * locks, nspawn-files.ts): list them before destroying the fleet, then check that none is left.
 */
export function fleetNspawnFiles(made: Pick<FleetState, "dir" | "netns">): string[] {
  const scope = { paths: [made.dir], netns: made.netns, loops: loopDevicesUnder(made.dir) };
  return findFleetProcesses(scope).flatMap((f) => nspawnFiles(f.info));
}
