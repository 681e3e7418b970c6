// The rules biome cannot express (docs/architecture.md, "Packages"): only packages/btrfs and
// packages/runtime run host programs, always as execa(file, [args]); never a shell string, never
// shell: true, never execaCommand or the $`...` template form. Each of the two runs only the programs
// of its own layer (the table below): btrfs-progs belong to the pool, containers and image builds to
// the runtime. A program is named by a string literal where it is run; a variable first argument is
// allowed only inside the layer's one runner. Exits 1 listing every violation.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
/** Which programs each adapter package may run, and the files that run a program given to them. */
const adapters = new Map([
  [
    "btrfs",
    {
      programs: new Set(["btrfs", "setpriv"]),
      // The spawn helper runs what its parent asks for, checked against HELPER_PROGRAMS (these two).
      runners: new Set(["packages/btrfs/src/exec.ts", "packages/btrfs/src/spawn-helper-main.ts"]),
    },
  ],
  [
    "runtime",
    {
      programs: new Set([
        "systemd-nspawn",
        "systemd-run",
        "systemctl",
        "nsenter",
        "debootstrap",
        "cp",
        // The host's pending package updates (a simulation: host-updates.ts).
        "apt-get",
      ]),
      // host-command.ts runs the operator's maintenance command of a host update (an argv it is given).
      runners: new Set(["packages/runtime/src/host-exec.ts", "packages/runtime/src/host-command.ts"]),
    },
  ],
]);
// A call that starts a program: execa/execaSync, a runner (runTool, runHost), or btrfs's setpriv wrapper.
const callSites = /(?<![.\w]|function )\b(execa|execaSync|runTool|runHost|boundToCaller)\(\s*([^,)]*)/g;
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
    const adapter = adapters.get(pkg);
    if (spawners.test(text) && !adapter) {
      problems.push(`${rel}: runs host programs, but only packages/btrfs and packages/runtime may`);
    }
    if (adapter) {
      // Comment lines may name calls in prose; blank them (keeping line numbers).
      const code = text.replace(/^\s*(\/\/|\/?\*).*$/gm, "");
      for (const match of code.matchAll(callSites)) {
        const [, call, first] = match;
        const line = code.slice(0, match.index).split("\n").length;
        // A spread of a wrapper's answer (execa(...boundToCaller("btrfs", ...))) is checked at the wrapper.
        if (first.startsWith("...")) continue;
        const literal = /^["'`]([^"'`]+)["'`]$/.exec(first.trim());
        if (!literal) {
          if (!adapter.runners.has(rel)) {
            problems.push(
              `${rel}:${line}: ${call} runs a program named by a variable; name it where it is run`,
            );
          }
          continue;
        }
        if (!adapter.programs.has(literal[1])) {
          problems.push(
            `${rel}:${line}: packages/${pkg} runs ${literal[1]}, which is not its layer's (allowed: ${[...adapter.programs].join(", ")})`,
          );
        }
      }
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
