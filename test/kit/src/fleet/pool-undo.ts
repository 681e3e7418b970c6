import { rmdirSync } from "node:fs";
import { tryRunSync } from "../host-commands.js";
import type { FleetState } from "./fleet-state.js";
import { type LoopDevice, loopsUnder, mountEntriesUnder, ownedPaths } from "./host-footprint.js";
import { explainAttachedLoop, workingDirHolders } from "./mount-holders.js";
import { describeProcess, isUnder, type MountEntry, type ProcInfo } from "./proc-scan.js";
import { waitSync } from "./process-record.js";

// The undo of a fleet's pools (its mounts and loop devices), part of teardownFleetSync.

const RELEASE_DEADLINE_MS = 10_000;

/** Pool mounts (on a loop device) that a process works in: its working directory or root is there. */
function poolsInUse(mounts: readonly MountEntry[]): Map<MountEntry, ProcInfo[]> {
  const held = new Map<MountEntry, ProcInfo[]>();
  for (const m of mounts) {
    if (!m.source.startsWith("/dev/loop")) continue;
    const holders = workingDirHolders(m.mountPoint);
    if (holders.length > 0) held.set(m, holders);
  }
  return held;
}

/** umount, lazily when busy; returns a problem line when neither worked. */
function unmount(mountPoint: string, log: (line: string) => void): string | undefined {
  if (tryRunSync("umount", [mountPoint]).ok) return undefined;
  const lazy = tryRunSync("umount", ["-l", mountPoint]);
  if (lazy.ok) log(`${mountPoint} was busy: detached lazily`);
  else if (!/not mounted/i.test(lazy.output)) return `umount ${mountPoint}: ${lazy.output.trim()}`;
  return undefined;
}

/** One problem line per holder of loop devices still attached, with its fix. */
function explainAttached(devices: readonly LoopDevice[], mountedSinceMs: number): string[] {
  // Devices held by the same process share one line: a container holds every pool there was.
  const byHolder = new Map<string, { devices: LoopDevice[]; fix: string }>();
  for (const device of devices) {
    const { holder, fix } = explainAttachedLoop(device.name, mountedSinceMs);
    const entry = byHolder.get(holder) ?? { devices: [], fix };
    entry.devices.push(device);
    byHolder.set(holder, entry);
  }
  return [...byHolder].map(([holder, { devices: held, fix }]) => {
    const names = held.map((d) => `${d.name} (${d.backingFile})`).join(", ");
    return `${names} ${held.length > 1 ? "are" : "is"} still attached: ${holder}; fix: ${fix}`;
  });
}

/**
 * rmdir; quietly when it is gone already or holds something (then it is no empty mount point); a
 * problem line on any other failure.
 */
function removeMountPoint(path: string): string | undefined {
  try {
    rmdirSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTEMPTY" && code !== "EBUSY")
      return `rmdir ${path} failed: ${(err as Error).message}`;
  }
  return undefined;
}

/**
 * The fleet's mounts and loop devices:
 * 1. A pool that a process works in (an operator's shell, say) stays mounted, as a problem line:
 *    detached lazily it would keep its loop device with nothing left to tell who holds it.
 * 2. The rest below the fleet's paths is unmounted, deepest first, lazily when busy.
 * 3. The pools' mount points are removed. Why: a process that makes a mount namespace (systemd-nspawn
 *    for every container, the fleet's or anyone else's on this machine; unshare) gets a copy of every
 *    mount there is at that moment, and where / is a private mount (no systemd as PID 1, like here) an
 *    unmount never reaches that copy: each kept its pool's btrfs and loop device alive for as long as
 *    the namespace lived (issue 10 §4: "loop devices still attached", after every `down`). Removing a
 *    directory that is a mount point only in other namespaces makes the kernel detach those mounts
 *    there (measured: the loop device was freed while the container and an `unshare -m` still ran).
 * 4. The loop devices are detached (a busy one once its last user is gone) with a deadline; each one
 *    left is a problem line with what holds it and the fix.
 * Returns the problems, and whether every pool is gone.
 */
export function undoPools(
  state: FleetState,
  log: (line: string) => void,
): { problems: string[]; gone: boolean } {
  const owned = ownedPaths(state);
  const mounts = owned.flatMap(mountEntriesUnder);
  const inUse = poolsInUse(mounts);
  const problems = [...inUse].map(([m, holders]) => {
    const who = holders.map(describeProcess).join(", ");
    const pids = holders.map((p) => p.pid).join(" ");
    return `${m.mountPoint} (${m.source}) stays mounted: ${who} works in it (working directory or root); fix: leave it (cd /) or end it (kill ${pids})`;
  });
  const kept = (path: string) => [...inUse.keys()].some((m) => isUnder(m.mountPoint, path));

  for (const m of mounts) {
    if (kept(m.mountPoint)) continue;
    const problem = unmount(m.mountPoint, log);
    if (problem) problems.push(problem);
  }
  for (const pool of state.pools) {
    const problem = kept(pool.mountPoint) ? undefined : removeMountPoint(pool.mountPoint);
    if (problem) problems.push(problem);
  }

  const keptDevices = [...inUse.keys()].map((m) => m.source);
  const devices = () => loopsUnder(owned).filter((d) => !keptDevices.includes(d.name));
  for (const device of devices()) {
    const result = tryRunSync("losetup", ["-d", device.name]);
    if (!result.ok && !/No such device/i.test(result.output))
      problems.push(`losetup -d ${device.name}: ${result.output.trim()}`);
  }
  if (!waitSync(() => devices().length === 0, RELEASE_DEADLINE_MS))
    problems.push(...explainAttached(devices(), state.createdAt));
  return { problems, gone: inUse.size === 0 && devices().length === 0 };
}
