import { GildError, parseTcpTarget } from "@gild/core";

export type ProbeKind = "http" | "tcp" | "exec";

/** A health probe as written in an app spec: everything but `kind` and its target may be left out. */
export interface ProbeInput {
  kind: ProbeKind;
  /** http: the URL to GET. tcp: "host:port" ("[::1]:80" for IPv6). */
  target?: string;
  /** exec: the command run inside the container; healthy on exit 0. */
  command?: string[];
  intervalMs?: number;
  timeoutMs?: number;
  initialDelayMs?: number;
  minHealthyMs?: number;
}

/** A validated probe with every default applied; frozen. */
export interface ProbeSpec {
  readonly kind: ProbeKind;
  readonly target: string | null;
  readonly command: readonly string[] | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly initialDelayMs: number;
  readonly minHealthyMs: number;
}

/** Defaults (docs/architecture.md, Switches). */
export const PROBE_DEFAULTS = Object.freeze({
  intervalMs: 2_000,
  timeoutMs: 1_000,
  initialDelayMs: 0,
  minHealthyMs: 10_000,
});

function checkDuration(value: unknown, name: string, min: number, problems: string[]): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    problems.push(`${name}: must be an integer of at least ${min} ms`);
  }
}

/** Validate a probe and apply the defaults; every problem is reported at once (GILD_INVALID_SPEC). */
export function resolveProbe(input: ProbeInput): ProbeSpec {
  const problems: string[] = [];
  const kind = input.kind;
  if (kind !== "http" && kind !== "tcp" && kind !== "exec") {
    problems.push(`kind: must be "http", "tcp" or "exec", not ${JSON.stringify(kind)}`);
  }
  if (kind === "http") {
    const target = input.target;
    const url = typeof target === "string" && URL.canParse(target) ? new URL(target) : undefined;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      problems.push("target: an http probe needs an http:// or https:// URL");
    }
  }
  if (kind === "tcp" && (typeof input.target !== "string" || !parseTcpTarget(input.target))) {
    problems.push('target: a tcp probe needs "host:port"');
  }
  if (kind === "exec") {
    const command = input.command;
    if (!Array.isArray(command) || command.length === 0 || command.some((a) => typeof a !== "string")) {
      problems.push("command: an exec probe needs a non-empty array of strings");
    }
  }
  checkDuration(input.intervalMs, "intervalMs", 1, problems);
  checkDuration(input.timeoutMs, "timeoutMs", 1, problems);
  checkDuration(input.initialDelayMs, "initialDelayMs", 0, problems);
  checkDuration(input.minHealthyMs, "minHealthyMs", 0, problems);
  if (problems.length > 0) {
    throw new GildError("GILD_INVALID_SPEC", `invalid health probe: ${problems.join("; ")}`, {
      details: { problems },
    });
  }
  return Object.freeze({
    kind,
    target: kind === "exec" ? null : (input.target as string),
    command: kind === "exec" ? Object.freeze([...(input.command as string[])]) : null,
    intervalMs: input.intervalMs ?? PROBE_DEFAULTS.intervalMs,
    timeoutMs: input.timeoutMs ?? PROBE_DEFAULTS.timeoutMs,
    initialDelayMs: input.initialDelayMs ?? PROBE_DEFAULTS.initialDelayMs,
    minHealthyMs: input.minHealthyMs ?? PROBE_DEFAULTS.minHealthyMs,
  });
}
