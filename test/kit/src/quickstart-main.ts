// Entry point of deploy/quickstart (after its preflight checks, installs and build):
//   node test/kit/dist/quickstart-main.js up [--quick] [--dir DIR] [--cache-dir DIR]
//   node test/kit/dist/quickstart-main.js down [--dir DIR]
import { quickstartDown, runQuickstart } from "./quickstart/run.js";

const DEFAULT_DIR = "/var/tmp/gild-quickstart";
const DEFAULT_CACHE = "/var/cache/gild-quickstart/debs";

function usage(): never {
  process.stderr.write(
    "usage: quickstart-main.js up [--quick] [--dir DIR] [--cache-dir DIR] | down [--dir DIR]\n",
  );
  process.exit(2);
}

const [verb, ...rest] = process.argv.slice(2);
let dir = DEFAULT_DIR;
let cacheDir = DEFAULT_CACHE;
let quick = false;
for (let i = 0; i < rest.length; i++) {
  const arg = rest[i];
  if (arg === "--quick") quick = true;
  else if (arg === "--dir" && rest[i + 1]) dir = rest[++i] as string;
  else if (arg === "--cache-dir" && rest[i + 1]) cacheDir = rest[++i] as string;
  else usage();
}
const log = (line: string) => process.stdout.write(`${line}\n`);

try {
  if (verb === "up") {
    const started = Date.now();
    await runQuickstart({ dir, cacheDir, quick, log });
    log(`\nquickstart done in ${Math.round((Date.now() - started) / 1000)} s`);
  } else if (verb === "down") {
    await quickstartDown(dir, log);
  } else usage();
} catch (err) {
  process.stderr.write(`quickstart: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
