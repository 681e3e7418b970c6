import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { GildError } from "@gild/core";
import { runTool } from "./exec.js";
import type { ToolLauncher } from "./launcher.js";

/** What `btrfs subvolume show` says about one subvolume. */
export interface SubvolumeInfo {
  path: string;
  uuid: string;
  /** uuid of the subvolume this one is a snapshot of (set on received incremental copies), or null. */
  parentUuid: string | null;
  /** uuid of the subvolume this one was received from, or null. */
  receivedUuid: string | null;
  readOnly: boolean;
  generation: number;
  subvolumeId: number;
  createdAt: string | null;
}

// The root directory of every btrfs subvolume has this inode number (BTRFS_FIRST_FREE_OBJECTID).
const SUBVOLUME_ROOT_INODE = 256;

function field(output: string, name: string): string | undefined {
  const match = new RegExp(`^\\s*${name}:\\s*(.*)$`, "m").exec(output);
  return match?.[1]?.trim();
}

function uuidOrNull(value: string | undefined): string | null {
  return value === undefined || value === "-" || value === "" ? null : value;
}

// btrfs prints "2026-11-27 13:25:12 +0000".
function parseBtrfsTime(text: string | undefined): string | null {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})$/.exec(text ?? "");
  if (!match) return null;
  const date = new Date(`${match[1]}T${match[2]}${match[3]}:${match[4]}`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** Parse the output of `btrfs subvolume show`. */
function parseSubvolumeShow(path: string, output: string): SubvolumeInfo {
  const uuid = uuidOrNull(field(output, "UUID"));
  if (uuid === null) {
    throw new GildError("GILD_BTRFS_FAILED", `btrfs subvolume show ${path}: no UUID in output`);
  }
  const flags = field(output, "Flags") ?? "";
  const created = field(output, "Creation time");
  return {
    path,
    uuid,
    parentUuid: uuidOrNull(field(output, "Parent UUID")),
    receivedUuid: uuidOrNull(field(output, "Received UUID")),
    readOnly: /\breadonly\b/.test(flags),
    generation: Number(field(output, "Generation") ?? Number.NaN),
    subvolumeId: Number(field(output, "Subvolume ID") ?? Number.NaN),
    createdAt: parseBtrfsTime(created),
  };
}

/** uuid, parent_uuid, received_uuid, read-only flag and generation of the subvolume at `path`. */
export async function showSubvolume(path: string, launcher?: ToolLauncher): Promise<SubvolumeInfo> {
  const { stdout } = await runTool("btrfs", ["subvolume", "show", path], {
    ...(launcher ? { launcher } : {}),
    classify: (stderr) =>
      /Not a Btrfs subvolume|not a subvolume|No such file/i.test(stderr)
        ? "GILD_SUBVOLUME_NOT_FOUND"
        : undefined,
  });
  return parseSubvolumeShow(path, stdout);
}

/** True when `path` is the root directory of a btrfs subvolume. */
export async function isSubvolume(path: string): Promise<boolean> {
  try {
    const stat = await lstat(path);
    return stat.isDirectory() && stat.ino === SUBVOLUME_ROOT_INODE;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

export async function createSubvolume(path: string, launcher?: ToolLauncher): Promise<void> {
  await runTool("btrfs", ["subvolume", "create", path], { ...(launcher ? { launcher } : {}) });
}

/** Snapshot `source` at `target`: writable by default, read-only with `readOnly`. Never a copy. */
export async function snapshotSubvolume(
  source: string,
  target: string,
  options: { readOnly?: boolean; launcher?: ToolLauncher | undefined } = {},
): Promise<void> {
  await runTool("btrfs", ["subvolume", "snapshot", ...(options.readOnly ? ["-r"] : []), source, target], {
    ...(options.launcher ? { launcher: options.launcher } : {}),
  });
}

/**
 * Mark a locally made subvolume read-only. Never used on received copies: making one writable clears its
 * received_uuid and breaks every later incremental send (docs/architecture.md, Images and generations).
 */
export async function setReadOnly(path: string, launcher?: ToolLauncher): Promise<void> {
  await runTool("btrfs", ["property", "set", "-ts", path, "ro", "true"], {
    ...(launcher ? { launcher } : {}),
  });
}

/** Delete one subvolume (no recursion, no guard: callers go through Pool.removeTree). */
export async function deleteSubvolumeUnguarded(path: string, launcher?: ToolLauncher): Promise<void> {
  await runTool("btrfs", ["subvolume", "delete", path], { ...(launcher ? { launcher } : {}) });
}

/**
 * Subvolumes at or below `dir`, deepest first (the order they can be deleted in). Walks directories
 * only; a subvolume root is recognised by its inode number, without spawning a process per directory.
 */
export async function findSubvolumes(dir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(path: string): Promise<void> {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.isDirectory()) await walk(join(path, entry.name));
    }
    if (await isSubvolume(path)) found.push(path);
  }
  await walk(dir);
  return found;
}

/** Bytes referenced by a subvolume's files (`btrfs filesystem du`), or null when it cannot tell. */
export async function subvolumeSize(path: string, launcher?: ToolLauncher): Promise<number | null> {
  const options = launcher ? { launcher } : {};
  // Freshly written data has no extents until it is flushed, and du counts extents.
  await runTool("btrfs", ["filesystem", "sync", path], options);
  const { stdout } = await runTool("btrfs", ["filesystem", "du", "-s", "--raw", path], options);
  const line = stdout.trim().split("\n").at(-1) ?? "";
  const total = Number(line.trim().split(/\s+/)[0]);
  return Number.isFinite(total) ? total : null;
}
