import {
  GildError,
  type HostUpdateCommand,
  type HostUpdateRecord,
  hostUpdateCommandsCalledFor,
  hostUpdateWithdrawals,
  type Logger,
} from "@gild/core";
import type { CommandBody, CommandService } from "./command-service.js";
import { hostUpdateCommandId } from "./host-update-observer.js";
import type { CommandRecord } from "./store/commands-repo.js";
import type { HostRecord } from "./store/hosts-repo.js";
import type { Store } from "./store/store.js";

/**
 * What a host update's stored record calls for, sent to its hosts: core's hostUpdateCommandsCalledFor,
 * each command with a deterministic id (nothing is sent twice, also after a restart), and the
 * withdrawal of run commands no host took once the job failed or was aborted.
 */
export class HostUpdateDispatcher {
  constructor(
    private readonly deps: { store: Store; commands: CommandService; log: Logger; now: () => number },
  ) {}

  withdraw(record: HostUpdateRecord): void {
    if (hostUpdateWithdrawals(record).length === 0) return;
    const ids = this.deps.store.commands.cancelPending(record.id, null, this.deps.now(), ["runHostCommand"]);
    if (ids.length > 0)
      this.deps.log.info({ job: record.id, commands: ids }, "withdrew host commands no host had taken");
  }

  dispatch(
    record: HostUpdateRecord,
    hosts: ReadonlyMap<string, HostRecord>,
    rows: readonly CommandRecord[],
  ): void {
    const issued = new Set(rows.map((r) => r.id));
    for (const command of hostUpdateCommandsCalledFor(record)) {
      const id = hostUpdateCommandId(record.id, command);
      const host = hosts.get(command.hostId);
      if (issued.has(id) || !host) continue;
      const kind = command.kind === "run" ? "runHostCommand" : "rebootHost";
      // Protocol 1 has no host maintenance: such a host fails at once, saying why.
      if (host.protocolVersion < 2) {
        this.deps.commands.recordLocalFailure({
          id,
          hostId: host.id,
          kind,
          rolloutId: record.id,
          error: new GildError(
            "GILD_PROTO_VERSION",
            `${host.name}'s agent speaks protocol 1: it cannot run host updates`,
            {
              hint: "upgrade the host's agent to this gild version",
            },
          ),
        });
        continue;
      }
      this.deps.commands.issue({
        id,
        hostId: host.id,
        rolloutId: record.id,
        body: this.body(record, command),
      });
    }
  }

  private body(record: HostUpdateRecord, command: HostUpdateCommand): CommandBody {
    return command.kind === "run"
      ? { runHostCommand: { argv: record.argv, timeoutMs: record.strategy.commandTimeoutMs } }
      : { rebootHost: {} };
  }
}
