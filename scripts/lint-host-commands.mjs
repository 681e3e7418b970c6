// The rule biome cannot express (STYLE.md 2, "Adapters own the host"): only packages/btrfs and
// packages/runtime run host programs, always as execa(file, [args]); never a shell string, never
// shell: true, never execaCommand or the $`...` template form. Exits 1 listing every violation.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const adapters = new Set(["btrfs", "runtime"]);
const spawners = /from\s+["'](?:node:)?child_process["']|from\s+["']execa["']/;
const shellForms = [
  [/\bexecaCommand(?:Sync)?\b/, "execaCommand parses a command string"],
  [
    /import\s*\{[^}]*\$[^}]*\}\s*from\s*["']execa["']/,
    "execa's $`...` template form builds a command from a string",
  ],
  [/shell:\s*true/, "shell: true runs a shell string"],
  [
    /import\s*\{[^}]*\bexec(?:Sync)?\b[^}]*\}\s*from\s*["'](?:node:)?child_process["']/,
    "child_process exec runs a shell string",
  ],
];

function* sourceFiles(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name === "gen") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mts|js|mjs)$/.test(name)) yield path;
  }
}

const problems = [];
for (const pkg of readdirSync(join(root, "packages"))) {
  const src = join(root, "packages", pkg, "src");
  try {
    statSync(src);
  } catch {
    continue;
  }
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, "utf8");
    const rel = relative(root, file);
    if (spawners.test(text) && !adapters.has(pkg)) {
      problems.push(`${rel}: runs host programs, but only packages/btrfs and packages/runtime may`);
    }
    for (const [pattern, why] of shellForms) {
      if (pattern.test(text)) problems.push(`${rel}: ${why}`);
    }
  }
}
if (problems.length > 0) {
  process.stderr.write(`host-command rule violated:\n  ${problems.join("\n  ")}\n`);
  process.exit(1);
}
