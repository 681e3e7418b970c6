// Generates the static protobuf code from proto/gild/v1 and v2 (never hand-written, never committed):
// one module holding both versions (gild.v1, gild.v2), since the controller speaks both.
// dist/gen/agent.js is what runs; src/gen/agent.d.ts lets src/ compile against it.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const protos = ["v1", "v2"].map((v) => join(pkg, "..", "..", "proto", "gild", v, "agent.proto"));
const require = createRequire(import.meta.url);
const cliDir = dirname(require.resolve("protobufjs-cli/package.json"));
const pbjs = join(cliDir, "bin", "pbjs");
const pbts = join(cliDir, "bin", "pbts");

mkdirSync(join(pkg, "dist", "gen"), { recursive: true });
mkdirSync(join(pkg, "src", "gen"), { recursive: true });
const js = join(pkg, "dist", "gen", "agent.js");
const dts = join(pkg, "src", "gen", "agent.d.ts");
execFileSync(
  process.execPath,
  [
    pbjs,
    "-t",
    "static-module",
    "-w",
    "es6",
    "--force-number",
    "--no-verify",
    "--no-delimited",
    "--no-service",
    "--dependency",
    "protobufjs/minimal.js",
    "-o",
    js,
    ...protos,
  ],
  { stdio: "inherit" },
);
// 64-bit fields (sizes, timestamps) must decode as plain numbers: protobufjs returns Long objects
// whenever the "long" package is loadable, whatever --force-number says. Turning Long off has to happen
// before the generated code builds its prototypes (their defaults are read from util.Long), so it goes
// right after the generated import. gild is the only user of this protobufjs instance.
const generated = readFileSync(js, "utf8");
const importLine = 'import $protobuf from "protobufjs/minimal.js";';
if (!generated.includes(importLine)) throw new Error(`pbjs output changed: no "${importLine}"`);
writeFileSync(
  js,
  generated.replace(importLine, `${importLine}\n$protobuf.util.Long = undefined;\n$protobuf.configure();`),
);
execFileSync(process.execPath, [pbts, "--no-comments", "-o", dts, js], { stdio: "inherit" });
copyFileSync(dts, join(pkg, "dist", "gen", "agent.d.ts"));
