import { randomUUID } from "node:crypto";
import { GildError, isGildError, type Logger, type SerializedError } from "@gild/core";
import {
  type Command,
  type CommandBody,
  type CommandKind,
  type CommandStatus,
  commandKindOf,
  type TransferProgress,
} from "@gild/protocol";
import type { AgentHub } from "./agent-hub.js";
import type { CommandRecord } from "./store/commands-repo.js";
import type { Store } from "./store/store.js";
import { storeFailure } from "./store/store-errors.js";

/** The final word on a command. */
export interface CommandOutcome {
  id: string;
  hostId: string;
  state: "succeeded" | "failed";
  result: Record<string, unknown> | null;
  error: SerializedError | null;
}

/** Transfer progress as views show it. */
export type ProgressUpdate = TransferProgress;

export type { CommandBody };

export interface CommandListener {
  /** A command reached a final state (recorded in the store before this is called). */
  onFinished?(record: CommandRecord): void;
  onProgress?(record: CommandRecord, progress: ProgressUpdate): void;
}

function kindOf(body: CommandBody): CommandKind {
  const kind = commandKindOf(body);
  if (kind === undefined) throw new Error("a command needs exactly one kind");
  return kind;
}

/** The result oneof of a CommandStatus as plain JSON (bytes as base64). */
function plainResult(status: CommandStatus): Record<string, unknown> | null {
  const result = status.pull ?? status.deploy ?? status.logs ?? status.hostCommand;
  if (!result) return null;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(result)) {
    out[key] = value instanceof Uint8Array ? Buffer.from(value).toString("base64") : value;
  }
  return out;
}

/**
 * Commands to hosts: stored before they are sent, sent when the host is connected, re-sent (same id)
 * whenever it reconnects until a final status arrives. Agents answer a repeated id with the recorded
 * result, so re-sending never runs a command twice.
 */
export class CommandService {
  private readonly waiters = new Map<string, Array<(outcome: CommandOutcome) => void>>();
  private readonly progress = new Map<string, Set<(p: ProgressUpdate) => void>>();
  private readonly listeners: CommandListener[] = [];
  private readonly log: Logger;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(private readonly deps: { store: Store; hub: AgentHub; log: Logger; now?: () => number }) {
    this.log = deps.log.child({ component: "commands" });
    deps.hub.addListener({
      onHello: (hostId) => this.resendOpen(hostId),
      onCommandStatus: (hostId, status) => this.handleStatus(hostId, status),
    });
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), 600_000);
    this.pruneTimer.unref();
  }

  /** Forget old final results: log reads after 10 minutes, other manual commands after 7 days. */
  private prune(): void {
    const now = this.now();
    try {
      const removed = this.deps.store.commands.pruneFinished(now - 600_000, now - 7 * 86_400_000);
      if (removed > 0) this.log.debug({ removed }, "pruned old command results");
    } catch (err) {
      // Pruning is housekeeping: a store that cannot write now is pruned on a later round.
      const unwritable = storeFailure(err);
      if (!unwritable) throw err;
      this.log.warn({ code: unwritable.code }, "could not prune old command results");
    }
  }

  close(): void {
    clearInterval(this.pruneTimer);
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  addListener(listener: CommandListener): void {
    this.listeners.push(listener);
  }

  /**
   * Store a command for a host and send it if the host is connected. With a given id, issuing the same
   * id again is a no-op (the executor's commands are deterministic, so a restart cannot duplicate them).
   */
  issue(options: { hostId: string; body: CommandBody; id?: string; rolloutId?: string }): string {
    const id = options.id ?? randomUUID();
    const command = { ...options.body, commandId: id } as Command;
    // Sent once it is on disk (the batch commits it at the end of this turn, or a later one when a
    // wave issued thousands): a controller killed now has either stored it, or not sent it.
    this.deps.store.commands.insertIfAbsent(
      {
        id,
        hostId: options.hostId,
        kind: kindOf(options.body),
        command,
        rolloutId: options.rolloutId ?? null,
        now: this.now(),
      },
      () => this.send(options.hostId, command),
    );
    return id;
  }

  /**
   * Send a command to its host if it is connected. A command the host's protocol version cannot carry
   * (host maintenance to a protocol-1 agent: GILD_PROTO_VERSION) fails at once with that code, instead
   * of waiting for an answer that cannot come.
   */
  private send(hostId: string, command: Command): void {
    try {
      this.deps.hub.send(hostId, { command });
    } catch (err) {
      if (!isGildError(err, "GILD_PROTO_VERSION")) throw err;
      this.log.warn(
        { hostId, commandId: command.commandId, err: err.message },
        "command refused for the host's protocol",
      );
      this.failStored(command.commandId, err);
    }
  }

  /**
   * Record a command that failed before it could be sent (its artifact could not be made, say), so that
   * whoever waits on its id, or observes it, sees the failure with its code.
   */
  recordLocalFailure(options: {
    id: string;
    hostId: string;
    kind: string;
    rolloutId?: string;
    error: GildError;
  }): void {
    const now = this.now();
    this.deps.store.commands.insertIfAbsent({
      id: options.id,
      hostId: options.hostId,
      kind: options.kind,
      command: null,
      rolloutId: options.rolloutId ?? null,
      now,
    });
    this.failStored(options.id, options.error);
  }

  /** Finish a stored command as failed with `error` (unless it is final already), and tell who waits. */
  private failStored(id: string, error: GildError): void {
    if (!this.deps.store.commands.finish(id, "failed", null, error.toJSON(), this.now())) return;
    const final = this.deps.store.commands.get(id) as CommandRecord;
    for (const l of this.listeners) l.onFinished?.(final);
    for (const waiter of this.waiters.get(id) ?? []) waiter(this.outcome(final));
    this.waiters.delete(id);
  }

  /** Send again every command of a host that has no final result (on each new connection). */
  resendOpen(hostId: string): void {
    // After the batch commits: an open command may be one issued in this turn, not yet on disk (an
    // agent answers an id it has seen with its journaled result, so sending one twice costs nothing).
    // One still waiting for the batch is sent when it is stored.
    this.deps.store.batch.afterCommit(() => {
      for (const record of this.deps.store.commands.openForHost(hostId))
        if (!this.deps.store.commands.unstored(record.id)) this.send(hostId, record.command);
    });
  }

  /** Resolve when the command is final; `onProgress` sees transfer progress meanwhile. */
  wait(
    id: string,
    options: { onProgress?: (p: ProgressUpdate) => void; signal?: AbortSignal } = {},
  ): Promise<CommandOutcome> {
    const existing = this.deps.store.commands.get(id);
    if (!existing) return Promise.reject(new GildError("GILD_NOT_FOUND", `no command ${id}`));
    if (existing.state === "succeeded" || existing.state === "failed")
      return Promise.resolve(this.outcome(existing));
    return new Promise((resolve, reject) => {
      const onProgress = options.onProgress;
      if (onProgress) {
        const set = this.progress.get(id) ?? new Set();
        set.add(onProgress);
        this.progress.set(id, set);
      }
      const done = (outcome: CommandOutcome) => {
        if (onProgress) this.progress.get(id)?.delete(onProgress);
        options.signal?.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      const onAbort = () => {
        const list = this.waiters.get(id);
        if (list)
          this.waiters.set(
            id,
            list.filter((w) => w !== done),
          );
        if (onProgress) this.progress.get(id)?.delete(onProgress);
        reject(options.signal?.reason ?? new GildError("GILD_TIMEOUT", "stopped waiting for the command"));
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const list = this.waiters.get(id) ?? [];
      list.push(done);
      this.waiters.set(id, list);
    });
  }

  private outcome(record: CommandRecord): CommandOutcome {
    return {
      id: record.id,
      hostId: record.hostId,
      state: record.state === "succeeded" ? "succeeded" : "failed",
      result: (record.result as Record<string, unknown> | null) ?? null,
      error: record.error,
    };
  }

  private handleStatus(hostId: string, status: CommandStatus): void {
    const id = status.commandId;
    const record = this.deps.store.commands.get(id);
    if (!record || record.hostId !== hostId) {
      this.log.warn({ hostId, commandId: id }, "status for a command this host was not given; ignored");
      return;
    }
    if (status.state === "running") {
      this.deps.store.commands.setRunning(id, this.now());
      const update = status.progress;
      if (update) {
        for (const fn of this.progress.get(id) ?? []) fn(update);
        for (const l of this.listeners) l.onProgress?.(record, update);
      }
      return;
    }
    const succeeded = status.state === "succeeded";
    const error: SerializedError | null = succeeded
      ? null
      : {
          code: status.error?.code || "GILD_COMMAND_FAILED",
          message: status.error?.message || "the command failed on the host",
          ...(status.error?.hint ? { hint: status.error.hint } : {}),
        };
    const changed = this.deps.store.commands.finish(
      id,
      succeeded ? "succeeded" : "failed",
      plainResult(status),
      error,
      this.now(),
    );
    if (!changed) return;
    const final = this.deps.store.commands.get(id) as CommandRecord;
    for (const l of this.listeners) l.onFinished?.(final);
    const outcome = this.outcome(final);
    for (const waiter of this.waiters.get(id) ?? []) waiter(outcome);
    this.waiters.delete(id);
    this.progress.delete(id);
  }
}
