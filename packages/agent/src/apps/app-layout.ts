import { mkdir, readdir, readFile, readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { isSubvolume, type Pool } from "@gild/btrfs";
import { type HealthSpec, isValidLine } from "@gild/core";
import { writeFileAtomic } from "../write-atomic.js";

/** What a generation runs, recorded beside its snapshot (apps/<app>/gen-<n>.json). */
export interface GenerationMeta {
  app: string;
  generation: number;
  imageLine: string;
  imageVersion: number;
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
 * Where an app lives on the pool (DESIGN.md, Server pool layout): apps/<app>/<generation> (writable
 * snapshots), apps/<app>/current (a symlink to the generation that runs), apps/<app>/gen-<n>.json,
 * apps/<app>/logs/<n>.log; its data in data/<app>.
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
    try {
      return JSON.parse(await readFile(this.metaPath(app, generation), "utf8")) as GenerationMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  async writeMeta(meta: GenerationMeta): Promise<void> {
    await mkdir(join(this.appDir(meta.app), "logs"), { recursive: true });
    const path = this.metaPath(meta.app, meta.generation);
    await writeFileAtomic(path, `${JSON.stringify(meta, null, 2)}\n`);
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
