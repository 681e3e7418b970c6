import {
  type ErrorCode,
  type FieldProblem,
  GildError,
  type HostUpdateStrategy,
  isGildError,
  type RawHostUpdateStrategy,
  resolveHostCommand,
  resolveHostUpdateStrategy,
} from "@gild/core";
import { type RequestProblem, selectRequestHosts, stringList } from "./host-selection.js";
import type { HostRecord } from "./store/hosts-repo.js";

/** A host-update request that passed every check: what a job is made from. */
export interface CheckedHostUpdateRequest {
  argv: string[];
  strategy: HostUpdateStrategy;
  /** The hosts the request selects, by name. */
  hosts: HostRecord[];
}

const FIELDS = new Set(["command", "argv", "hosts", "strategy"]);

/** The problems a coded GILD_INVALID_SPEC lists, each under `prefix`. */
function nested(err: unknown, prefix: string, problems: RequestProblem[]): void {
  if (!isGildError(err) || err.code !== "GILD_INVALID_SPEC") throw err;
  for (const p of (err.details?.problems ?? []) as FieldProblem[])
    problems.push({ path: p.path ? `${prefix}${p.path}` : prefix.replace(/\.$/, ""), message: p.message });
}

/**
 * Check a host-update request as a whole (`POST /v1/host-updates` and /plan): unknown fields, the
 * command, the strategy and the hosts, every problem with its path in one GILD_INVALID_SPEC. `hosts`
 * is required: a host update never means "every host" by omission.
 */
export function checkHostUpdateRequest(
  body: unknown,
  allHosts: readonly HostRecord[],
): CheckedHostUpdateRequest {
  const problems: RequestProblem[] = [];
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new GildError("GILD_INVALID_SPEC", "a host-update request is an object", {
      details: { problems: [{ path: "", message: "must be an object" }] },
    });
  const raw = body as Record<string, unknown>;
  for (const key of Object.keys(raw))
    if (!FIELDS.has(key))
      problems.push({ path: key.slice(0, 64), message: `unknown field "${key.slice(0, 64)}"` });

  let argv: string[] = [];
  try {
    argv = resolveHostCommand({
      ...(raw.command !== undefined ? { shell: raw.command } : {}),
      ...(raw.argv !== undefined ? { argv: raw.argv } : {}),
    });
  } catch (err) {
    nested(err, "", problems);
  }
  let strategy: HostUpdateStrategy | undefined;
  try {
    strategy = resolveHostUpdateStrategy((raw.strategy ?? {}) as RawHostUpdateStrategy);
  } catch (err) {
    nested(err, "strategy.", problems);
  }
  const selectors = stringList(raw.hosts, "hosts", 100_000, problems);
  if (raw.hosts === undefined || (Array.isArray(raw.hosts) && raw.hosts.length === 0))
    problems.push({ path: "hosts", message: "name the hosts: names or key=value label selectors" });
  const hosts = selectRequestHosts(allHosts, selectors, "hosts", problems);

  if (problems.length === 1 && problems[0]?.code) {
    const [only] = problems as [RequestProblem];
    throw new GildError(only.code as ErrorCode, only.message, { hint: "list hosts with `gild hosts`" });
  }
  if (problems.length > 0 || !strategy) {
    const listed = problems.map(({ path, message }) => ({ path, message }));
    throw new GildError(
      "GILD_INVALID_SPEC",
      `invalid host update: ${listed.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      {
        hint: "fix every listed problem; `gild host-update plan` checks one without starting anything",
        details: { problems: listed },
      },
    );
  }
  return { argv, strategy, hosts };
}
