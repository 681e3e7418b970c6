import { GildError, isGildError, type Logger, toGildError } from "@gild/core";
import {
  type Command,
  type CommandKind,
  type CommandPayloads,
  type CommandResults,
  type CommandStatus,
  commandKindOf,
  commandPayload,
  type TransferProgress,
  type WireError,
} from "@gild/protocol";
import { CommandJournal, type JournalEntry } from "./journal.js";
import { ProgressReporter } from "./progress.js";

/** The result of a command that an executor fills (at most one kind). */
export type CommandResult = CommandResults;

/** One executor per command kind; the map is checked exhaustively by the type system. */
export type Executors = {
  [K in CommandKind]: (
    command: CommandPayloads[K],
    ctx: { progress: ProgressReporter; commandId: string },
  ) => Promise<CommandResult>;
};

/** A status with nothing but its id and state (and an error when failed). */
function status(
  commandId: string,
  state: CommandStatus["state"],
  error: WireError | null = null,
): CommandStatus {
  return { commandId, state, progress: null, error, replayed: false };
}

/** Work an earlier agent began for a command and this one finishes (an interrupted switch). */
export interface ResumedCommand {
  commandId: string;
  kind: CommandKind;
  run: () => Promise<CommandResult>;
}

// Final statuses kept to send again after a reconnect: a status sent just before a link died may
// never have arrived. The controller ignores one it already has.
const RECENT_FINALS = 1000;
const RECENT_FINALS_MAX_AGE_MS = 3_600_000;

/**
 * Runs the controller's commands: each id once. Commands are admitted one at a time in the order
 * they arrive (so two commands for one app take its lock in that order, and a repeated id that arrives
 * at the same moment finds the first one running); a repeated id gets the journaled final status
 * (marked replayed) or, while it still runs, its latest status; nothing runs twice, across restarts too.
 */
export class CommandRunner {
  private readonly running = new Map<string, CommandStatus>();
  private readonly recent = new Map<string, { status: CommandStatus; finishedAt: number }>();
  private intake: Promise<void> = Promise.resolve();
  private sessionStartedAt: number | null = null;
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      journal: CommandJournal;
      executors: Executors;
      send: (status: CommandStatus) => void;
      /**
       * Called after every command that may have changed what the host has, before its final status
       * is sent: the inventory goes first, so the controller has what a result implies when the result
       * arrives (a `gild app deploy` that returns finds the app's new state in `gild app ls`).
       */
      reportChanges: () => Promise<void>;
      /** Called once a command's final status is in the journal. */
      onFinal?: (commandId: string, kind: CommandKind) => Promise<void>;
      /** Every command's final status once it ran here (replays of journaled results excluded): metrics. */
      onEnded?: (kind: CommandKind, final: CommandStatus, ms: number) => void;
      log: Logger;
    },
  ) {
    this.log = deps.log.child({ component: "commands" });
  }

  /** Take a command: resolves once it is admitted (answered, or started), not when it has run. */
  handle(command: Command): Promise<void> {
    const admitted = this.intake.then(() => this.admit(command));
    this.intake = admitted.catch((err: unknown) =>
      this.log.error({ err, commandId: command.commandId }, "command admission failed"),
    );
    return admitted;
  }

  /** Finish commands an earlier agent left running (before the connection starts). */
  resume(work: ResumedCommand): void {
    const admitted = this.intake.then(async () => {
      const id = work.commandId;
      const entry = id === "" ? undefined : await this.journalEntry(id, work.kind);
      if (entry === "damaged") return;
      if (entry?.state === "final") {
        // Its result is journaled already: only the bookkeeping after it was left undone.
        await this.deps.onFinal?.(id, work.kind);
        return;
      }
      if (id !== "") this.running.set(id, status(id, "running"));
      this.log.info({ commandId: id, kind: work.kind }, "finishing a command an earlier agent began");
      void this.execute(id, work.kind, Date.now(), () => work.run());
    });
    this.intake = admitted.catch((err: unknown) =>
      this.log.error({ err, commandId: work.commandId }, "resuming a command failed"),
    );
  }

  /**
   * A new session with the controller: send again the final statuses of commands that ended since
   * the previous session began (they may have been lost with it, or produced while cut off).
   */
  reconnected(): void {
    const now = Date.now();
    const since = Math.max(this.sessionStartedAt ?? 0, now - RECENT_FINALS_MAX_AGE_MS);
    this.sessionStartedAt = now;
    let sent = 0;
    for (const { status, finishedAt } of this.recent.values()) {
      if (finishedAt < since) continue;
      this.deps.send({ ...status, replayed: true });
      sent++;
    }
    if (sent > 0) this.log.info({ statuses: sent }, "sent the results of commands that ended while cut off");
  }

  private async admit(command: Command): Promise<void> {
    const id = command.commandId;
    if (id.length === 0 || id.length > 256) return;
    const live = this.running.get(id);
    if (live) {
      this.deps.send(live);
      return;
    }
    const kind = commandKindOf(command);
    const entry = await this.journalEntry(id, kind ?? "unknown");
    if (entry === "damaged") return;
    if (entry?.state === "final") {
      const status = CommandJournal.finalStatus(entry);
      if (status) this.deps.send({ ...status, replayed: true });
      return;
    }
    if (!kind) {
      this.deps.send(
        status(id, "failed", {
          code: "GILD_COMMAND_UNKNOWN",
          message: "this agent does not know the command's kind; upgrade it",
          hint: "",
        }),
      );
      return;
    }
    const startedAt = Date.now();
    const runningStatus = status(id, "running");
    // Marked before the first await: a repeat of this id admitted next finds it running.
    this.running.set(id, runningStatus);
    try {
      await this.deps.journal.markRunning(id, kind);
    } catch (err) {
      this.running.delete(id);
      throw err;
    }
    this.deps.send(runningStatus);
    void this.execute(id, kind, startedAt, (progress) => {
      const execute = this.deps.executors[kind] as (
        c: unknown,
        ctx: { progress: ProgressReporter; commandId: string },
      ) => Promise<CommandResult>;
      return execute(commandPayload(command, kind), { progress, commandId: id });
    });
  }

  /**
   * The journal entry of a command, or "damaged": then the command is answered at once with a coded
   * failure (it may have run, its result is unknown) and that answer replaces the damaged entry, so the
   * same id always gets the same answer and never waits for the controller's deadline.
   */
  private async journalEntry(id: string, kind: string): Promise<JournalEntry | undefined | "damaged"> {
    try {
      return await this.deps.journal.get(id);
    } catch (err) {
      if (!isGildError(err, "GILD_STATE_CORRUPT")) throw err;
      this.log.error(
        { commandId: id, err: err.message },
        "a journal entry is damaged; answering with a failure",
      );
      const final = status(id, "failed", {
        code: "GILD_STATE_CORRUPT",
        message: `this command's journal entry on the host is damaged (${err.message}); whether it ran, and how, is unknown`,
        hint: "look at the host's state (gild hosts, gild app ls) before repeating the operation",
      });
      await this.deps.journal.finish(id, kind, final, Date.now());
      this.running.delete(id);
      this.remember(final);
      this.deps.send(final);
      return "damaged";
    }
  }

  private async execute(
    id: string,
    kind: CommandKind,
    startedAt: number,
    work: (progress: ProgressReporter) => Promise<CommandResult>,
  ): Promise<void> {
    const progress = new ProgressReporter((p: TransferProgress) => {
      const update: CommandStatus = { ...status(id, "running"), progress: p };
      if (id !== "") this.running.set(id, update);
      this.deps.send(update);
    });
    let final: CommandStatus;
    try {
      const result = await work(progress);
      final = { ...status(id, "succeeded"), ...result };
      this.log.info({ commandId: id, kind, ms: Date.now() - startedAt }, "command succeeded");
    } catch (err) {
      const gild = toGildError(err);
      if (!(err instanceof GildError))
        this.log.error({ commandId: id, kind, err }, "command failed unexpectedly");
      else this.log.warn({ commandId: id, kind, code: gild.code, err: gild.message }, "command failed");
      final = {
        ...status(id, "failed", { code: gild.code, message: gild.message, hint: gild.hint ?? "" }),
        ...((err as { result?: CommandResult }).result ?? {}),
      };
    }
    this.deps.onEnded?.(kind, final, Date.now() - startedAt);
    try {
      if (id !== "") {
        await this.deps.journal.finish(id, kind, final, startedAt);
        this.remember(final);
        this.running.delete(id);
        await this.deps.reportChanges();
        this.deps.send(final);
      }
      await this.deps.onFinal?.(id, kind);
    } catch (err) {
      // The result could not be journaled (a full or failing disk). This agent still answers with it
      // (a repeat of the id gets it from memory); the journal keeps "running", so a restarted agent
      // runs the command again, which for every kind converges (deploys and rollbacks are idempotent).
      this.log.error({ commandId: id, kind, err }, "could not record a command's result");
      if (id !== "") {
        this.running.set(id, final);
        this.remember(final);
        await this.deps.reportChanges();
        this.deps.send(final);
      }
    }
    if (id === "") await this.deps.reportChanges();
  }

  private remember(final: CommandStatus): void {
    const id = final.commandId;
    this.recent.delete(id);
    this.recent.set(id, { status: final, finishedAt: Date.now() });
    if (this.recent.size > RECENT_FINALS) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
  }
}
