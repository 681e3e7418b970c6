import { spawn } from "node:child_process";
import { join } from "node:path";
import { findRepoRoot } from "../fleet/repo-root.js";

export interface ScriptResult {
  code: number;
  /** stdout and stderr, interleaved as they came. */
  output: string;
}

/** Run `deploy/quickstart <args>` as an operator would, with a deadline; resolves with its exit code. */
export function runQuickstartScript(args: readonly string[], timeoutMs: number): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(findRepoRoot(), "deploy", "quickstart"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CI: process.env.CI ?? "" },
    });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(
        new Error(
          `deploy/quickstart ${args.join(" ")} timed out after ${timeoutMs} ms:\n${output.slice(-4000)}`,
        ),
      );
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
}
