import { isAbsolute, normalize } from "node:path";
import { GildError, isValidLine } from "@gild/core";
import type { ContainerSpec } from "./types.js";

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Throws GILD_INVALID_SPEC unless (app, generation) names a container. */
export function assertContainerId(app: string, generation: number): void {
  const problems: string[] = [];
  checkId(app, generation, problems);
  if (problems.length > 0) throw invalid(problems);
}

function checkId(app: string, generation: number, problems: string[]): void {
  if (typeof app !== "string" || !isValidLine(app)) {
    problems.push(`app: "${String(app)}" is not a valid app name (a-z, 0-9, '-', starting with a letter)`);
  }
  if (!Number.isSafeInteger(generation) || generation < 1) {
    problems.push(`generation: ${String(generation)} is not a positive integer`);
  }
}

function checkPath(value: unknown, path: string, problems: string[]): void {
  if (typeof value !== "string" || value.length === 0) {
    problems.push(`${path}: must be a non-empty string`);
    return;
  }
  if (!isAbsolute(value)) problems.push(`${path}: "${value}" is not an absolute path`);
  // A NUL cannot travel in an argument; ".." would let a spec point elsewhere than it seems to.
  if (value.includes("\0")) problems.push(`${path}: contains a NUL byte`);
  else if (normalize(value) !== value) problems.push(`${path}: "${value}" is not a normalized path`);
}

function invalid(problems: string[]): GildError {
  return new GildError("GILD_INVALID_SPEC", `invalid container spec: ${problems.join("; ")}`, {
    details: { problems },
  });
}

/** Check a ContainerSpec and report every problem at once (GILD_INVALID_SPEC with details.problems). */
export function validateContainerSpec(spec: ContainerSpec): ContainerSpec {
  const problems: string[] = [];
  checkId(spec.app, spec.generation, problems);
  checkPath(spec.rootfs, "rootfs", problems);
  if (spec.rootfs === "/") problems.push("rootfs: the host's root cannot be a container root");
  checkPath(spec.logFile, "logFile", problems);
  if (spec.netnsPath !== undefined) checkPath(spec.netnsPath, "netnsPath", problems);
  if (!Array.isArray(spec.command) || spec.command.length === 0) {
    problems.push("command: must be a non-empty array of strings");
  } else {
    spec.command.forEach((arg, i) => {
      if (typeof arg !== "string" || arg.includes("\0"))
        problems.push(`command[${i}]: must be a string without NUL`);
    });
    if (spec.command[0] === "") problems.push("command[0]: must not be empty");
  }
  for (const [name, value] of Object.entries(spec.env ?? {})) {
    if (!ENV_NAME_RE.test(name)) problems.push(`env.${name}: not a valid environment variable name`);
    if (typeof value !== "string" || value.includes("\0")) {
      problems.push(`env.${name}: value must be a string without NUL`);
    }
  }
  (spec.binds ?? []).forEach((bind, i) => {
    checkPath(bind.source, `binds[${i}].source`, problems);
    checkPath(bind.target, `binds[${i}].target`, problems);
  });
  if (!Number.isSafeInteger(spec.stopTimeoutMs) || spec.stopTimeoutMs < 1) {
    problems.push(`stopTimeoutMs: ${String(spec.stopTimeoutMs)} is not a positive integer`);
  }
  if (problems.length > 0) throw invalid(problems);
  return spec;
}
