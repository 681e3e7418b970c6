import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { capture } from "./fleet/capture.js";
import { findRepoRoot } from "./fleet/repo-root.js";
import { run } from "./host-commands.js";

/** A gild release other than the checkout's, built in a directory of its own. */
export interface ReleaseBuild {
  commit: string;
  /** Its `gild` CLI (bin.js), to run with this Node.js. */
  cli: string;
}

/** Whether the checkout's history holds `commit` (a shallow clone may not). */
export async function hasCommit(commit: string, root: string = findRepoRoot()): Promise<boolean> {
  const res = await capture("git", ["-C", root, "cat-file", "-e", `${commit}^{commit}`]);
  return res.code === 0;
}

/** `git archive <commit>` unpacked into `dir`: the release's files, nothing written to the checkout. */
function unpack(root: string, commit: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const archive = spawn("git", ["-C", root, "archive", "--format=tar", commit], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const untar = spawn("tar", ["-x", "-C", dir], { stdio: ["pipe", "ignore", "pipe"] });
    archive.stdout.pipe(untar.stdin);
    let stderr = "";
    archive.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    untar.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    let done = 0;
    const finish = (code: number | null) => {
      if (code !== 0) reject(new Error(`unpacking ${commit} failed (${code}): ${stderr.trim()}`));
      else if (++done === 2) resolve();
    };
    archive.on("error", reject);
    untar.on("error", reject);
    archive.on("exit", finish);
    untar.on("exit", finish);
  });
}

/**
 * Build the release at `commit` of this checkout's history in `dir` (which the caller owns and
 * removes): its files by `git archive`, its dependencies from the pnpm store the checkout was installed
 * from (offline first, so nothing is downloaded that this machine already has), then `pnpm build`.
 */
export async function buildRelease(
  commit: string,
  dir: string,
  root: string = findRepoRoot(),
): Promise<ReleaseBuild> {
  mkdirSync(dir, { recursive: true });
  await unpack(root, commit, dir);
  const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? "/usr" };
  const offline = await capture("pnpm", ["install", "--frozen-lockfile", "--offline"], {
    cwd: dir,
    env,
    timeoutMs: 600_000,
  });
  if (offline.code !== 0)
    await run("pnpm", ["install", "--frozen-lockfile"], { cwd: dir, env, timeoutMs: 600_000 });
  await run("pnpm", ["build"], { cwd: dir, env, timeoutMs: 600_000 });
  const cli = join(dir, "packages", "cli", "dist", "bin.js");
  if (!existsSync(cli)) throw new Error(`the release at ${commit} built no CLI at ${cli}`);
  return { commit, cli };
}
