import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The monorepo root: the nearest directory above this module that holds pnpm-workspace.yaml. */
export function findRepoRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no pnpm-workspace.yaml above ${from}: not inside the gild repo`);
    dir = parent;
  }
}

/** The built `gild` CLI the fleet runs with this Node.js; fails clearly when it is not built. */
export function gildCliPath(root: string = findRepoRoot()): string {
  const cli = join(root, "packages", "cli", "dist", "bin.js");
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build the CLI first (npx tsc -b packages/cli)`);
  return cli;
}
