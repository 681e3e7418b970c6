import { GildError, type Logger, toGildError } from "@gild/core";
import {
  type Command,
  type CommandKind,
  CommandState,
  type CommandStatus,
  commandKindOf,
  type TransferProgress,
} from "@gild/protocol";
import { CommandJournal } from "./journal.js";
import { ProgressReporter } from "./progress.js";

/** The result oneof of a CommandStatus that an executor fills. */
export type CommandResult = Pick<CommandStatus, "pull" | "deploy" | "logs">;

/** One executor per command kind; the map is checked exhaustively by the type system. */
export type Executors = {
  [K in CommandKind]: (
    command: NonNullable<Command[K]>,
    ctx: { progress: ProgressReporter; commandId: string },
  ) => Promise<CommandResult>;
};

/**
 * Runs the controller's commands: each id once. A repeated id gets the journaled final status (marked
 * replayed) or, while it still runs, its latest status; nothing runs twice, across restarts too.
 */
export class CommandRunner {
  private readonly running = new Map<string, CommandStatus>();
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      journal: CommandJournal;
      executors: Executors;
      send: (status: CommandStatus) => void;
      /** Called after every command that may have changed what the host has. */
      afterCommand: () => void;
      log: Logger;
    },
  ) {
    this.log = deps.log.child({ component: "commands" });
  }

  async handle(command: Command): Promise<void> {
    const id = command.commandId ?? "";
    if (id.length === 0 || id.length > 256) return;
    const live = this.running.get(id);
    if (live) {
      this.deps.send(live);
      return;
    }
    const entry = await this.deps.journal.get(id);
    if (entry?.state === "final") {
      const status = CommandJournal.finalStatus(entry);
      if (status) this.deps.send({ ...status, replayed: true });
      return;
    }
    const kind = commandKindOf(command);
    if (!kind) {
      const status: CommandStatus = {
        commandId: id,
        state: CommandState.STATE_FAILED,
        error: {
          code: "GILD_COMMAND_UNKNOWN",
          message: "this agent does not know the command's kind; upgrade it",
          hint: "",
        },
      };
      this.deps.send(status);
      return;
    }
    await this.run(id, kind, command);
  }

  private async run(id: string, kind: CommandKind, command: Command): Promise<void> {
    const startedAt = Date.now();
    const runningStatus: CommandStatus = { commandId: id, state: CommandState.STATE_RUNNING };
    this.running.set(id, runningStatus);
    await this.deps.journal.markRunning(id, kind);
    this.deps.send(runningStatus);
    const progress = new ProgressReporter((p: TransferProgress) => {
      const status: CommandStatus = { commandId: id, state: CommandState.STATE_RUNNING, progress: p };
      this.running.set(id, status);
      this.deps.send(status);
    });
    let final: CommandStatus;
    try {
      const execute = this.deps.executors[kind] as (
        c: unknown,
        ctx: { progress: ProgressReporter; commandId: string },
      ) => Promise<CommandResult>;
      const result = await execute(command[kind], { progress, commandId: id });
      final = { commandId: id, state: CommandState.STATE_SUCCEEDED, ...result };
      this.log.info({ commandId: id, kind, ms: Date.now() - startedAt }, "command succeeded");
    } catch (err) {
      const gild = toGildError(err);
      if (!(err instanceof GildError))
        this.log.error({ commandId: id, kind, err }, "command failed unexpectedly");
      else this.log.warn({ commandId: id, kind, code: gild.code, err: gild.message }, "command failed");
      final = {
        commandId: id,
        state: CommandState.STATE_FAILED,
        error: { code: gild.code, message: gild.message, hint: gild.hint ?? "" },
        ...((err as { result?: CommandResult }).result ?? {}),
      };
    }
    await this.deps.journal.finish(id, kind, final, startedAt);
    this.running.delete(id);
    this.deps.send(final);
    this.deps.afterCommand();
  }
}
