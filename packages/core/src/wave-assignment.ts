import { createHash } from "node:crypto";
import type { FieldProblem } from "./config-fields.js";
import { GildError } from "./errors.js";
import type { CountOrPercent } from "./rollout-model.js";

// How a wave job (a rollout, a host update) puts its hosts into waves: canaries first (named, or the
// first by hash of host id), then batches. One code path, so both kinds of job choose alike.

/** A host a wave job may target; canaries can be named by name as well as by id. */
export interface WaveCandidate {
  hostId: string;
  hostName?: string;
}

/** Host ids ordered by the sha256 hex of the id: a stable order that does not depend on input order. */
export function orderByHostHash(hostIds: readonly string[]): string[] {
  const keyed = hostIds.map((id) => ({ id, key: createHash("sha256").update(id).digest("hex") }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return keyed.map((k) => k.id);
}

/** Hosts in one batch of `total` for a wave entry: a percent rounds up to at least one host. */
export function batchSize(entry: CountOrPercent, total: number): number {
  if ("count" in entry) return entry.count;
  // The epsilon keeps 10% of 30 at 3 despite float error.
  return Math.max(1, Math.ceil((entry.percent * total) / 100 - 1e-9));
}

/** Split hosts into batches: entry i sizes batch i, the last entry repeats; percents are of all hosts. */
export function splitIntoWaves(hostIds: readonly string[], waves: readonly CountOrPercent[]): string[][] {
  if (waves.length === 0) throw new Error("splitIntoWaves needs at least one wave entry");
  const out: string[][] = [];
  let next = 0;
  while (next < hostIds.length) {
    const entry = waves[Math.min(out.length, waves.length - 1)] as CountOrPercent;
    const size = Math.max(1, Math.min(batchSize(entry, hostIds.length), hostIds.length - next));
    out.push(hostIds.slice(next, next + size));
    next += size;
  }
  return out;
}

/** The canary wave (when there are canaries), then the rest of `ordered` in batches. */
export function canaryFirstWaves(
  ordered: readonly string[],
  canaries: readonly string[],
  waves: readonly CountOrPercent[],
): { waves: string[][]; hasCanary: boolean } {
  const rest = ordered.filter((id) => !canaries.includes(id));
  return {
    waves: [...(canaries.length > 0 ? [[...canaries]] : []), ...splitIntoWaves(rest, waves)],
    hasCanary: canaries.length > 0,
  };
}

/**
 * Named canaries as host ids: each must name one of `targets` (by id or name), and `refuse` may turn
 * one down (it returns why, given the name as written). Every problem at once, as GILD_INVALID_SPEC.
 */
export function pickNamedCanaries(
  named: readonly string[],
  targets: readonly WaveCandidate[],
  options: { among: string; hint: string; refuse?: (target: WaveCandidate, name: string) => string | null },
): string[] {
  const problems: FieldProblem[] = [];
  const picked: string[] = [];
  named.forEach((name, i) => {
    const target = targets.find((t) => t.hostId === name || t.hostName === name);
    const refused = target === undefined ? null : (options.refuse?.(target, name) ?? null);
    if (target === undefined) {
      problems.push({ path: `canary[${i}]`, message: `host "${name}" is not among ${options.among}` });
    } else if (refused !== null) {
      problems.push({ path: `canary[${i}]`, message: refused });
    } else if (!picked.includes(target.hostId)) {
      picked.push(target.hostId);
    }
  });
  if (problems.length > 0) {
    throw new GildError(
      "GILD_INVALID_SPEC",
      `invalid canary hosts: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      { hint: options.hint, details: { problems } },
    );
  }
  return picked;
}
