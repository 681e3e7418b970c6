export { readCliEnv } from "./cli-env.js";
export { createCliContext } from "./context.js";
export { runCli } from "./main.js";
export { buildProgram } from "./program.js";
