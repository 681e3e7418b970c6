// What systemd-nspawn leaves under /run when it is killed, for the containers of a fleet.
import { rmSync, statSync } from "node:fs";
import { basename } from "node:path";
import type { ProcInfo } from "./proc-scan.js";

const NSPAWN_RUN = "/run/systemd/nspawn";

function option(cmdline: readonly string[], name: string): string | undefined {
  const prefix = `${name}=`;
  return cmdline.find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

/**
 * The files a running systemd-nspawn made under /run: its machine's propagation dir and the lock of its
 * root directory (locks/inode-<dev>:<ino>). It removes both when it exits, but not when it is killed,
 * which is how a fleet's teardown ends the containers its agents left running. Read while it runs, from
 * its command line (gild passes --machine= and --directory=), and before the pools are unmounted (the
 * lock's name is the directory's device and inode).
 */
export function nspawnFiles(info: Pick<ProcInfo, "cmdline">): string[] {
  if (basename(info.cmdline[0] ?? "") !== "systemd-nspawn") return [];
  const out: string[] = [];
  const machine = option(info.cmdline, "--machine");
  // A machine name has no slash (runtime's machine-name.ts); anything else is not one of ours.
  if (machine && !machine.includes("/") && machine !== "." && machine !== "..")
    out.push(`${NSPAWN_RUN}/propagate/${machine}`);
  const directory = option(info.cmdline, "--directory");
  if (directory) {
    try {
      const st = statSync(directory);
      out.push(`${NSPAWN_RUN}/locks/inode-${st.dev}:${st.ino}`);
    } catch {
      // Gone already: nothing to name.
    }
  }
  return out;
}

/** Remove what killed nspawns left (their processes must be gone: a running one still uses them). */
export function removeNspawnFiles(files: readonly string[]): void {
  for (const file of files) rmSync(file, { recursive: true, force: true });
}
