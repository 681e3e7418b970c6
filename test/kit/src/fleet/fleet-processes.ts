import { statSync } from "node:fs";
import {
  isUnder,
  linkTarget,
  listProcesses,
  mountsOf,
  openPaths,
  type ProcInfo,
  selfAndAncestors,
} from "./proc-scan.js";

/** What identifies a fleet's processes on this machine, records aside. */
export interface FleetScope {
  /** Paths only the fleet uses (its own dirs). */
  paths: readonly string[];
  /** Its network namespaces, by name (those that still exist are looked up). */
  netns: readonly string[];
  /** The loop devices of its pools. */
  loops: readonly string[];
}

export interface FoundProcess {
  info: ProcInfo;
  /** Why it counts as the fleet's, for the log: "its command line names /x/controller/data". */
  why: string;
  /** It lives in one of the fleet's network namespaces (an app, a container, an agent). */
  inNetns: boolean;
}

/** "net:[inode]" of each named namespace that still exists. */
function netnsIds(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of names) {
    try {
      out.set(`net:[${statSync(`/run/netns/${name}`).ino}]`, name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return out;
}

/** The first fleet path an argument names ("--data-dir", "--directory=...", "--bind=src:dst"). */
function namedPath(args: readonly string[], paths: readonly string[]): string | undefined {
  for (const arg of args) {
    for (const token of arg.split(/[=:,]/)) {
      if (token.startsWith("/") && paths.some((p) => isUnder(token, p))) return token;
    }
  }
  return undefined;
}

/**
 * The fleet's processes, found by what they are rather than by recorded pid (a controller or agent
 * started again by hand is in no record): a process in one of the fleet's network namespaces; in this
 * mount namespace, one whose command line names a fleet path or that has a fleet file open, mapped or
 * as its program; in another mount namespace, one whose root is on a fleet pool (a container the fleet
 * started, such as an image build, that outlived the nspawn that started it). Path checks stay in this
 * mount namespace: another namespace's paths name other files. Never this process or its ancestors
 * (`deploy/quickstart down --dir X` names the dir too).
 */
export function findFleetProcesses(scope: FleetScope): FoundProcess[] {
  const spared = selfAndAncestors();
  const netns = netnsIds(scope.netns);
  const ownMnt = linkTarget("/proc/self/ns/mnt");
  const rootOnPool = new Map<string, string | undefined>();
  const out: FoundProcess[] = [];
  for (const info of listProcesses()) {
    if (info.pid === 1 || spared.has(info.pid)) continue;
    const netnsName = info.netns ? netns.get(info.netns) : undefined;
    if (netnsName) {
      out.push({ info, why: `it is in network namespace ${netnsName}`, inNetns: true });
      continue;
    }
    if (info.mntns !== ownMnt) {
      if (!info.mntns) continue;
      // Every process of a mount namespace sees the same mounts (chroots aside): read them once.
      if (!rootOnPool.has(info.mntns)) {
        const root = mountsOf(info.pid).find((m) => m.mountPoint === "/");
        rootOnPool.set(info.mntns, root && scope.loops.includes(root.source) ? root.source : undefined);
      }
      const loop = rootOnPool.get(info.mntns);
      if (loop) out.push({ info, why: `its root is on ${loop}, a pool of the fleet`, inNetns: false });
      continue;
    }
    const named = namedPath(info.cmdline, scope.paths);
    if (named) {
      out.push({ info, why: `its command line names ${named}`, inNetns: false });
      continue;
    }
    const open = openPaths(info.pid).find((p) => scope.paths.some((dir) => isUnder(p, dir)));
    if (open) out.push({ info, why: `it has ${open} open`, inNetns: false });
  }
  return out;
}
