import { createHash } from "node:crypto";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { GildError } from "@gild/core";
import { type CommandStatus, decodeLegacyCommandStatus, modelFromJson, modelToJson } from "@gild/protocol";
import { readIfExists, writeFileAtomic } from "./write-atomic.js";

/** A command's journal entry: running, or its final status exactly as it was sent. */
export interface JournalEntry {
  commandId: string;
  kind: string;
  state: "running" | "final";
  startedAt: number;
  finishedAt: number | null;
  /** The final status as JSON (modelToJson). */
  result?: string | null;
  /** Entries written before protocol 2: base64 of the final status's protocol-1 encoding. */
  status?: string | null;
}

const KEEP_ENTRIES = 5000;

/**
 * The agent's command journal (one small file per command id in <state>/journal): a repeated
 * command id is answered with the recorded result instead of running again, also across restarts.
 */
export class CommandJournal {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "journal");
  }

  private path(commandId: string): string {
    return join(this.dir, `${createHash("sha256").update(commandId).digest("hex").slice(0, 40)}.json`);
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.prune();
  }

  /** The entry of a command id; GILD_STATE_CORRUPT when its file is damaged (truncated, not JSON). */
  async get(commandId: string): Promise<JournalEntry | undefined> {
    const path = this.path(commandId);
    const text = await readIfExists(path);
    if (text === null) return undefined;
    let entry: JournalEntry;
    try {
      entry = JSON.parse(text) as JournalEntry;
      if (entry.state === "final") CommandJournal.finalStatus(entry);
    } catch (err) {
      throw new GildError(
        "GILD_STATE_CORRUPT",
        `journal entry ${path} is damaged: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    // Another id that hashes to the same file name (40 hex digits of sha256: in practice never).
    return entry.commandId === commandId ? entry : undefined;
  }

  async markRunning(commandId: string, kind: string): Promise<void> {
    await this.write({
      commandId,
      kind,
      state: "running",
      startedAt: Date.now(),
      finishedAt: null,
      result: null,
    });
  }

  async finish(commandId: string, kind: string, status: CommandStatus, startedAt: number): Promise<void> {
    await this.write({
      commandId,
      kind,
      state: "final",
      startedAt,
      finishedAt: Date.now(),
      result: modelToJson(status),
    });
  }

  /** The recorded final status of an entry. */
  static finalStatus(entry: JournalEntry): CommandStatus | undefined {
    if (typeof entry.result === "string") return modelFromJson<CommandStatus>(entry.result);
    if (typeof entry.status === "string")
      return decodeLegacyCommandStatus(Buffer.from(entry.status, "base64"));
    return undefined;
  }

  private async write(entry: JournalEntry): Promise<void> {
    const path = this.path(entry.commandId);
    await writeFileAtomic(path, JSON.stringify(entry), 0o600);
  }

  /**
   * Keep the newest entries only (the controller never repeats ids that old), and drop the temp files
   * of writes a crash interrupted (nothing writes while the journal opens).
   */
  private async prune(): Promise<void> {
    const all = await readdir(this.dir);
    for (const n of all.filter((name) => name.endsWith(".tmp"))) await rm(join(this.dir, n), { force: true });
    const names = all.filter((n) => n.endsWith(".json"));
    if (names.length <= KEEP_ENTRIES) return;
    const dated = await Promise.all(
      names.map(async (n) => ({ n, t: (await stat(join(this.dir, n))).mtimeMs })),
    );
    dated.sort((a, b) => a.t - b.t);
    for (const { n } of dated.slice(0, dated.length - KEEP_ENTRIES))
      await rm(join(this.dir, n), { force: true });
  }
}
