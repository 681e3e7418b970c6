import {
  describeProcess,
  isUnder,
  linkTarget,
  listProcesses,
  mountsOf,
  openPaths,
  type ProcInfo,
  selfAndAncestors,
  startedAtMs,
  workingDirs,
} from "./proc-scan.js";

// What keeps a fleet's pool (its btrfs and loop device) alive once the fleet's own processes are gone,
// and the words that tell an operator which process it is and what to do. None of these processes is
// the fleet's, so none is stopped here.

/** Processes in this mount namespace whose working directory or root is at or below mountPoint. */
export function workingDirHolders(mountPoint: string): ProcInfo[] {
  const spared = selfAndAncestors();
  const ownMnt = linkTarget("/proc/self/ns/mnt");
  return listProcesses().filter(
    (p) =>
      !spared.has(p.pid) && p.mntns === ownMnt && workingDirs(p.pid).some((dir) => isUnder(dir, mountPoint)),
  );
}

/** One process per mount namespace other than this one: the oldest, the one that made it or close. */
function otherMountNamespaces(processes: readonly ProcInfo[]): ProcInfo[] {
  const ownMnt = linkTarget("/proc/self/ns/mnt");
  const oldest = new Map<string, ProcInfo>();
  for (const p of processes) {
    if (!p.mntns || p.mntns === ownMnt) continue;
    const known = oldest.get(p.mntns);
    if (!known || p.startTicks < known.startTicks) oldest.set(p.mntns, p);
  }
  return [...oldest.values()];
}

/** Why a loop device is still attached, and the fix; devices with the same holder share them. */
export interface AttachedLoop {
  holder: string;
  fix: string;
}

/**
 * Why a loop device is still attached after the fleet unmounted it, removed its mount point (which
 * detaches the copies other mount namespaces hold there) and detached it: a process that has the
 * device open; a mount namespace that shows its filesystem mounted somewhere else; or else a mount
 * namespace made since `mountedAtMs` that holds it out of sight (a container's mount namespace does not
 * show what lies outside its root), which nothing here can unmount: it goes when that namespace ends.
 */
export function explainAttachedLoop(device: string, mountedAtMs: number): AttachedLoop {
  const processes = listProcesses();
  const kill = (ps: readonly ProcInfo[]) => `kill ${[...new Set(ps.map((p) => p.pid))].join(" ")}`;
  const openers = processes.filter((p) => openPaths(p.pid).includes(device));
  if (openers.length > 0)
    return { holder: `${openers.map(describeProcess).join(", ")} has it open`, fix: kill(openers) };
  const others = otherMountNamespaces(processes);
  const copies = others.flatMap((p) => {
    const at = mountsOf(p.pid).find((m) => m.source === device);
    return at ? [{ p, at: at.mountPoint }] : [];
  });
  if (copies.length > 0) {
    const who = copies.map(({ p, at }) => `${describeProcess(p)} at ${at}`).join(", ");
    const unmount = copies.map(({ p, at }) => `nsenter --mount=/proc/${p.pid}/ns/mnt -- umount -l ${at}`);
    return {
      holder: `its filesystem is mounted in another mount namespace, that of ${who}`,
      fix: `${unmount.join("; ")} (or end it: ${kill(copies.map((c) => c.p))})`,
    };
  }
  // Who made a namespace: its nearest ancestor in this mount namespace (systemd-nspawn, for a
  // container), which says what it runs, and ends the namespace when stopped.
  const ownMnt = linkTarget("/proc/self/ns/mnt");
  const maker = (p: ProcInfo): ProcInfo => {
    for (let q: ProcInfo | undefined = p; q; q = processes.find((r) => r.pid === q?.ppid))
      if (q.mntns === ownMnt) return q.pid === 1 ? p : q;
    return p;
  };
  // A namespace whose root is this one's shows every mount it has: not showing the device, it holds
  // none. Only one rooted elsewhere (a container) can hide it.
  const ownRoot = mountsOf("self").find((m) => m.mountPoint === "/");
  const mayHide = (p: ProcInfo) => {
    const root = mountsOf(p.pid).find((m) => m.mountPoint === "/");
    return !root || !ownRoot || root.device !== ownRoot.device || root.root !== ownRoot.root;
  };
  const made = others.filter((p) => startedAtMs(p.startTicks) >= mountedAtMs && mayHide(p)).map(maker);
  const since = [...new Map(made.map((p) => [p.pid, p])).values()];
  if (since.length > 0) {
    const who = since.map(
      (p) => `${describeProcess(p)}, running since ${new Date(startedAtMs(p.startTicks)).toISOString()}`,
    );
    return {
      holder: `nothing here has it open or mounted, so a mount namespace made after the pool was mounted holds its filesystem out of sight (a container keeps a copy of every mount there was when it started, and does not show those outside its root); made since then: ${who.join("; ")}`,
      fix: `${since.length === 1 ? `stop it (${kill(since)})` : "stop the one of them that holds it (kill <its pid>)"}, or wait until it ends: its copy goes with it`,
    };
  }
  return { holder: "nothing on this machine is seen holding it", fix: `losetup -d ${device}` };
}
