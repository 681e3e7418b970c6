import { stat } from "node:fs/promises";
import { GildError } from "@gild/core";
import type { ContainerSpec } from "./types.js";

async function kindOf(path: string): Promise<"dir" | "other" | "missing"> {
  try {
    return (await stat(path)).isDirectory() ? "dir" : "other";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw err;
  }
}

/**
 * The host paths a spec names must exist before nspawn is asked (it would fail with only a line in the
 * app's log): the root, every bind source, the network namespace. Every problem is reported at once.
 */
export async function checkHostPaths(spec: ContainerSpec): Promise<void> {
  const problems: string[] = [];
  const rootfs = await kindOf(spec.rootfs);
  if (rootfs !== "dir")
    problems.push(`rootfs ${spec.rootfs} ${rootfs === "missing" ? "does not exist" : "is not a directory"}`);
  for (const bind of spec.binds) {
    if ((await kindOf(bind.source)) === "missing") problems.push(`bind source ${bind.source} does not exist`);
  }
  if (spec.netnsPath !== undefined && (await kindOf(spec.netnsPath)) === "missing") {
    problems.push(`network namespace ${spec.netnsPath} does not exist`);
  }
  if (problems.length > 0) {
    throw new GildError(
      "GILD_CONTAINER_START_FAILED",
      `cannot start ${spec.app} generation ${spec.generation}: ${problems.join("; ")}`,
      { details: { problems } },
    );
  }
}
