import {
  type ErrorCode,
  type FieldProblem,
  GildError,
  isGildError,
  parseImageRef,
  type RawStrategy,
  type RolloutStrategy,
  resolveStrategy,
} from "@gild/core";
import { type RequestProblem, selectRequestHosts, stringList } from "./host-selection.js";
import type { HostRecord } from "./store/hosts-repo.js";

/** What `POST /v1/rollouts` (and /plan) takes. */
export interface RolloutRequest {
  image: string;
  strategy?: RawStrategy;
  /** Host names or label selectors to limit the rollout to. */
  hosts?: string[];
  /** App names to limit the rollout to. */
  apps?: string[];
}

/** A request that passed every check: what the executor builds a rollout from. */
export interface CheckedRolloutRequest {
  line: string;
  version: number;
  strategy: RolloutStrategy;
  /** The hosts the request selects (all hosts without `hosts`). */
  hosts: HostRecord[];
  /** Apps of the line the rollout covers. */
  appNames: Set<string>;
  /** The apps the request named, or null for every app of the line. */
  apps: string[] | null;
}

/** What the check reads: the images, the apps of a line, the hosts. */
export interface RolloutRequestContext {
  imageExists(line: string, version: number): boolean;
  appsOnLine(line: string): string[];
  hosts(): HostRecord[];
}

const FIELDS = new Set(["image", "strategy", "hosts", "apps"]);

type Problem = RequestProblem;

/**
 * Check a rollout request as a whole: unknown fields, the image, the strategy, the hosts and the apps,
 * every problem with its path in one GILD_INVALID_SPEC. A request with one problem that has a code of
 * its own (GILD_IMAGE_NOT_FOUND, GILD_HOST_NOT_FOUND) gets that code, as before problems were collected.
 */
export function checkRolloutRequest(body: unknown, ctx: RolloutRequestContext): CheckedRolloutRequest {
  const problems: Problem[] = [];
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new GildError("GILD_INVALID_SPEC", "a rollout request is an object", {
      details: { problems: [{ path: "", message: "must be an object" }] },
    });
  const raw = body as Record<string, unknown>;
  for (const key of Object.keys(raw))
    if (!FIELDS.has(key))
      problems.push({ path: key.slice(0, 64), message: `unknown field "${key.slice(0, 64)}"` });

  let ref: { line: string; version: number } | undefined;
  if (typeof raw.image !== "string" || raw.image.length > 128)
    problems.push({ path: "image", message: "must be an image version like php@3" });
  else {
    try {
      ref = parseImageRef(raw.image);
    } catch (err) {
      problems.push({ path: "image", message: (err as Error).message });
    }
  }
  if (ref && !ctx.imageExists(ref.line, ref.version))
    problems.push({
      path: "image",
      message: `no image ${ref.line}@${ref.version} on the controller`,
      code: "GILD_IMAGE_NOT_FOUND",
    });

  let strategy: RolloutStrategy | undefined;
  try {
    strategy = resolveStrategy((raw.strategy ?? {}) as RawStrategy);
  } catch (err) {
    if (!isGildError(err) || err.code !== "GILD_INVALID_SPEC") throw err;
    const listed = (err.details?.problems ?? []) as FieldProblem[];
    for (const p of listed)
      problems.push({ path: p.path ? `strategy.${p.path}` : "strategy", message: p.message });
  }

  const all = ctx.hosts();
  const selectors = stringList(raw.hosts, "hosts", 100_000, problems);
  const chosen = selectRequestHosts(all, selectors, "hosts", problems);
  // Canaries named by the strategy must at least be hosts; whether they run the line is checked
  // when the waves are made.
  const canary = (raw.strategy as { canary?: unknown } | undefined)?.canary;
  if (Array.isArray(canary))
    canary.forEach((name, i) => {
      if (typeof name === "string" && !all.some((h) => h.name === name || h.id === name))
        problems.push({ path: `strategy.canary[${i}]`, message: `no host named ${name}` });
    });

  const named = stringList(raw.apps, "apps", 10_000, problems);
  const ofLine = ref ? ctx.appsOnLine(ref.line) : [];
  if (ref)
    named.forEach((app, i) => {
      if (!ofLine.includes(app))
        problems.push({ path: `apps[${i}]`, message: `${app} is not an app of line ${ref.line}` });
    });

  if (problems.length === 1 && problems[0]?.code) {
    const [only] = problems as [Problem];
    throw new GildError(only.code as ErrorCode, only.message, {
      hint:
        only.code === "GILD_HOST_NOT_FOUND"
          ? "list hosts with `gild hosts`"
          : "list images with `gild image ls`; push or create the version first",
    });
  }
  if (problems.length > 0 || !ref || !strategy) {
    const listed = problems.map(({ path, message }) => ({ path, message }));
    throw new GildError(
      "GILD_INVALID_SPEC",
      `invalid rollout: ${listed.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      {
        hint: "fix every listed problem; `gild rollout plan` checks a rollout without starting anything",
        details: { problems: listed },
      },
    );
  }
  if (ofLine.length === 0)
    throw new GildError("GILD_ROLLOUT_NO_HOSTS", `no app runs on image line ${ref.line}`, {
      hint: `define one: gild app create <name> --image ${ref.line} ...`,
    });
  const hosts = selectors.length > 0 ? chosen : all;
  return {
    line: ref.line,
    version: ref.version,
    strategy,
    hosts,
    appNames: new Set(named.length > 0 ? named : ofLine),
    apps: named.length > 0 ? [...new Set(named)] : null,
  };
}
