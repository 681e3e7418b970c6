import { mkdir, readdir, readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { isSubvolume, type Pool } from "@gild/btrfs";
import { GildError, type HealthSpec, isValidLine } from "@gild/core";
import { readIfExists, writeFileAtomic } from "../write-atomic.js";
import type { RollbackFailure, SwitchIntent } from "./switch-intent.js";

/** What a generation runs, recorded beside its snapshot (apps/<app>/gen-<n>.json). */
export interface GenerationMeta {
  app: string;
  generation: number;
  imageLine: string;
  imageVersion: number;
  /** The code line mounted read-only at codeMount, its version; "", "" and 0 without code (and in metas made before). */
  codeLine?: string;
  codeVersion?: number;
  codeMount?: string;
  specHash: string;
  command: string[];
  env: Record<string, string>;
  /** Mount point of data/<app> inside the container, or "" for none. */
  dataMount: string;
  port: number;
  health: HealthSpec | null;
  stopTimeoutMs: number;
  createdAt: number;
}

/**
 * Where an app lives on the pool (docs/architecture.md, The agent's pool and state): apps/<app>/<generation> (writable
 * snapshots), apps/<app>/current (a symlink to the generation that runs), apps/<app>/gen-<n>.json,
 * apps/<app>/logs/<n>.log, apps/<app>/switch.json while a switch is unsettled, and
 * apps/<app>/rollback-failed.json after a rollback that did not turn healthy; its data in data/<app>.
 */
export class AppLayout {
  constructor(readonly pool: Pool) {}

  appDir(app: string): string {
    return this.pool.appDir(app);
  }

  generationDir(app: string, generation: number): string {
    return join(this.appDir(app), String(generation));
  }

  metaPath(app: string, generation: number): string {
    return join(this.appDir(app), `gen-${generation}.json`);
  }

  logFile(app: string, generation: number): string {
    return join(this.appDir(app), "logs", `${generation}.log`);
  }

  dataDir(app: string): string {
    return this.pool.dataDir(app);
  }

  /** Names of the apps on this pool. */
  async apps(): Promise<string[]> {
    const names = await readdir(this.pool.paths.apps).catch(() => [] as string[]);
    return names.filter(isValidLine).sort();
  }

  /** Generations whose snapshot exists, ascending. */
  async generations(app: string): Promise<number[]> {
    const names = await readdir(this.appDir(app)).catch(() => [] as string[]);
    const gens: number[] = [];
    for (const name of names) {
      if (/^[1-9][0-9]*$/.test(name) && (await isSubvolume(join(this.appDir(app), name))))
        gens.push(Number(name));
    }
    return gens.sort((a, b) => a - b);
  }

  /** The next generation number: above every snapshot, meta and log ever written for the app. */
  async nextGeneration(app: string): Promise<number> {
    const names = await readdir(this.appDir(app)).catch(() => [] as string[]);
    const logs = await readdir(join(this.appDir(app), "logs")).catch(() => [] as string[]);
    let max = 0;
    for (const name of [...names, ...logs]) {
      const match = /^(?:gen-)?([1-9][0-9]*)(?:\.json|\.log)?$/.exec(name);
      if (match) max = Math.max(max, Number(match[1]));
    }
    return max + 1;
  }

  async current(app: string): Promise<number | null> {
    try {
      const target = await readlink(join(this.appDir(app), "current"));
      return /^[1-9][0-9]*$/.test(target) ? Number(target) : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Point `current` at a generation, atomically (a new symlink renamed over the old one). */
  async setCurrent(app: string, generation: number): Promise<void> {
    const tmp = join(this.appDir(app), `.current-${process.pid}`);
    await rm(tmp, { force: true });
    await symlink(String(generation), tmp);
    await rename(tmp, join(this.appDir(app), "current"));
  }

  async readMeta(app: string, generation: number): Promise<GenerationMeta | null> {
    return readJson<GenerationMeta>(this.metaPath(app, generation));
  }

  async writeMeta(meta: GenerationMeta): Promise<void> {
    await mkdir(join(this.appDir(meta.app), "logs"), { recursive: true });
    const path = this.metaPath(meta.app, meta.generation);
    await writeFileAtomic(path, `${JSON.stringify(meta, null, 2)}\n`);
  }

  private intentPath(app: string): string {
    return join(this.appDir(app), "switch.json");
  }

  private rollbackFailurePath(app: string): string {
    return join(this.appDir(app), "rollback-failed.json");
  }

  /** The unsettled switch of an app, or null. A damaged file is an error: it must not be guessed at. */
  async readIntent(app: string): Promise<SwitchIntent | null> {
    return readJson<SwitchIntent>(this.intentPath(app));
  }

  async writeIntent(intent: SwitchIntent): Promise<void> {
    await mkdir(this.appDir(intent.app), { recursive: true });
    await writeFileAtomic(this.intentPath(intent.app), `${JSON.stringify(intent, null, 2)}\n`);
  }

  async removeIntent(app: string): Promise<void> {
    await rm(this.intentPath(app), { force: true });
  }

  async readRollbackFailure(app: string): Promise<RollbackFailure | null> {
    return readJson<RollbackFailure>(this.rollbackFailurePath(app));
  }

  /** Record (or, with null, clear) that the generation an app went back to is not healthy. */
  async setRollbackFailure(app: string, failure: RollbackFailure | null): Promise<void> {
    if (failure === null) await rm(this.rollbackFailurePath(app), { force: true });
    else await writeFileAtomic(this.rollbackFailurePath(app), `${JSON.stringify(failure)}\n`);
  }

  /** The generation before `current` that still has its snapshot: what a rollback returns to. */
  async previous(app: string, current: number | null): Promise<number | null> {
    const gens = (await this.generations(app)).filter((g) => g !== current);
    const older = gens.filter((g) => current === null || g < current);
    return older.at(-1) ?? gens.at(-1) ?? null;
  }

  /** Remove a generation's snapshot and meta; its log stays (so `app logs` can still show why it failed). */
  async removeGeneration(app: string, generation: number): Promise<void> {
    await this.pool.removeTree(this.generationDir(app, generation));
    await rm(this.metaPath(app, generation), { force: true });
  }
}

/** A JSON file, or null when it does not exist; a file that does not parse is GILD_STATE_CORRUPT. */
async function readJson<T>(path: string): Promise<T | null> {
  const text = await readIfExists(path);
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new GildError("GILD_STATE_CORRUPT", `${path} is damaged: ${(err as Error).message}`, {
      hint: "it was written with fsync and rename, so a damaged copy means the disk or a person changed it; restore it or remove it",
      cause: err,
    });
  }
}
