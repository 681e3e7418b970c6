import { join } from "node:path";
import { tryRunSync } from "../host-commands.js";
import type { FleetState } from "./fleet-state.js";
import { isUnder, type MountEntry, mountsOf } from "./proc-scan.js";

// What a fleet leaves on the host besides processes and files, as this namespace sees it: mounts,
// loop devices, links. Read by the teardown and by fleetLeftovers.

/** What the fleet may remove: its dir when it made it, else the subdirs it made there. */
export function ownedPaths(state: Pick<FleetState, "dir" | "ownDir">): string[] {
  if (state.ownDir) return [state.dir];
  return ["controller", "hosts", "logs"].map((name) => join(state.dir, name));
}

/** Mounts at or below dir in this mount namespace, deepest first. */
export function mountEntriesUnder(dir: string): MountEntry[] {
  return mountsOf("self")
    .filter((m) => isUnder(m.mountPoint, dir))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

/** Mount points at or below dir in this mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  return mountEntriesUnder(dir).map((m) => m.mountPoint);
}

export interface LoopDevice {
  name: string;
  /** Without " (deleted)". */
  backingFile: string;
}

/** Loop devices whose backing file is under one of paths (also a deleted one), from `losetup -J -l`. */
export function loopsUnder(paths: readonly string[]): LoopDevice[] {
  const listed = tryRunSync("losetup", ["-J", "-l"]);
  if (!listed.ok || listed.output.trim() === "") return [];
  const parsed = JSON.parse(listed.output) as {
    loopdevices?: Array<{ name: string; "back-file"?: string | null }>;
  };
  return (parsed.loopdevices ?? [])
    .map((d) => ({ name: d.name, backingFile: (d["back-file"] ?? "").replace(/ \(deleted\)$/, "") }))
    .filter((d) => d.backingFile !== "" && paths.some((p) => isUnder(d.backingFile, p)));
}

/** Names of the loop devices whose backing file is under dir. */
export function loopDevicesUnder(dir: string): string[] {
  return loopsUnder([dir]).map((d) => d.name);
}

/** Names of the links in this network namespace (`ip -o link show`), without the @peer suffix. */
export function linkNames(): string[] {
  const result = tryRunSync("ip", ["-o", "link", "show"]);
  if (!result.ok) return [];
  return result.output
    .split("\n")
    .map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "")
    .filter((n) => n !== "");
}
