import {
  commandsCalledFor,
  type Logger,
  type RolloutCommand,
  type RolloutRecord,
  toGildError,
  withdrawalsFor,
} from "@gild/core";
import type { AppService } from "./app-service.js";
import type { CommandBody, CommandService } from "./command-service.js";
import type { ImageService } from "./image-service.js";
import { appsInScope, rolloutCommandId } from "./rollout-observer.js";
import type { HostInventory } from "./store/hosts-repo.js";

/** What an instance runs with the rollout's line moved to `version`: the other line stays as it runs there. */
function movedVersions(
  app: HostInventory["apps"][number],
  line: string,
  version: number,
): { image: number; code: number } {
  return app.imageLine === line
    ? { image: version, code: app.codeVersion }
    : { image: app.imageVersion, code: version };
}

import { type CommandRecord, NEW_COMMANDS_PER_FLUSH } from "./store/commands-repo.js";
import type { HostRecord } from "./store/hosts-repo.js";
import type { StoredRollout } from "./store/rollouts-repo.js";
import type { Store } from "./store/store.js";
import { storeFailure } from "./store/store-errors.js";

/** CommandService.issue, as a dispatch step calls it (it counts what it made). */
type IssueCommand = (options: { id: string; hostId: string; rolloutId: string; body: CommandBody }) => void;

/**
 * What a rollout's stored record calls for, sent to its hosts (docs/architecture.md, Rollouts): the
 * commands of core's commandsCalledFor, one sender per kind, each with a deterministic id so nothing
 * is sent twice (also after a restart), and the withdrawal of what the record no longer wants.
 */
export class RolloutDispatcher {
  /** Pulls being issued (making the artifact may take a while): not issued again meanwhile. */
  private readonly dispatching = new Set<string>();

  constructor(
    private readonly deps: {
      store: Store;
      commands: CommandService;
      images: ImageService;
      apps: AppService;
      log: Logger;
      now: () => number;
      /** Plan the rollout again: a pull for this host was issued, or failed to be. */
      poke: (rolloutId: string, hostId: string) => void;
      /** Plan it again later: what failed was not stored. */
      retryLater: (rolloutId: string, err: unknown) => void;
    },
  ) {}

  /** Withdraw what core's withdrawalsFor says the record no longer wants (never rollbacks). */
  withdraw(record: RolloutRecord): void {
    const now = this.deps.now();
    for (const { hostId, kinds } of withdrawalsFor(record)) {
      const commandKinds = kinds.map((k) => (k === "fetch" ? "pullImage" : "deployApp"));
      const ids = this.deps.store.commands.cancelPending(record.id, hostId, now, commandKinds);
      if (ids.length > 0)
        this.deps.log.info(
          { rollout: record.id, hostId, commands: ids },
          "withdrew commands no host had taken",
        );
    }
  }

  /**
   * Send every command the stored record calls for (core's commandsCalledFor, the rule the planner's
   * tests check), through one sender per kind. Ids are deterministic, so a command already issued is
   * not issued again, also after a restart. The first slice of a wave's switches is stored and sent as
   * soon as it is made, while the rest are made: at 10,000 hosts making 9,000 took 150 ms, which the
   * wave's first switch waited for.
   */
  dispatch(
    stored: StoredRollout,
    appNames: ReadonlySet<string>,
    hosts: ReadonlyMap<string, HostRecord>,
    rows: readonly CommandRecord[],
  ): void {
    const record = stored.record;
    // As read at the start of this step: commands issued since then have ids this step cannot repeat.
    const issued = new Map(rows.map((c) => [c.id, c]));
    // One body per app and versions, not one per host: a wave of 9,000 hosts runs the same few.
    const bodies = new Map<string, CommandBody>();
    let made = 0;
    const issue: IssueCommand = (options) => {
      this.deps.commands.issue(options);
      made += 1;
      if (made === NEW_COMMANDS_PER_FLUSH) this.deps.store.batch.flushNow();
    };
    const senders: {
      [K in RolloutCommand["kind"]]: (
        host: HostRecord,
        command: Extract<RolloutCommand, { kind: K }>,
      ) => void;
    } = {
      fetch: (host, command) => this.sendFetch(record, host, command.attempt, issued),
      switch: (host) => this.sendSwitches(record, host, appNames, issued, bodies, issue),
      rollback: (host) => this.sendRollbacks(record, host, appNames, issued, issue),
    };
    for (const command of commandsCalledFor(record)) {
      const host = hosts.get(command.hostId);
      if (!host) continue;
      (senders[command.kind] as (h: HostRecord, c: RolloutCommand) => void)(host, command);
    }
  }

  private sendFetch(
    record: RolloutRecord,
    host: HostRecord,
    attempt: number,
    issued: ReadonlyMap<string, CommandRecord>,
  ): void {
    const id = rolloutCommandId.fetch(record.id, host.id, attempt);
    if (issued.has(id) || this.dispatching.has(id)) return;
    this.dispatching.add(id);
    // Making the artifact may take a while: it must not hold up planning.
    this.deps.images
      .issuePull(host, record.line, record.version, { commandId: id, rolloutId: record.id })
      .then(
        () => this.deps.poke(record.id, host.id),
        (err: unknown) => {
          if (storeFailure(err)) {
            // Not the host's failure: nothing was stored, and the pull is issued again later.
            this.deps.retryLater(record.id, err);
            return;
          }
          const gild = toGildError(err);
          this.deps.log.error(
            { rollout: record.id, host: host.name, err: gild.message },
            "could not issue the image pull",
          );
          try {
            this.deps.commands.recordLocalFailure({
              id,
              hostId: host.id,
              kind: "pullImage",
              rolloutId: record.id,
              error: gild,
            });
            this.deps.poke(record.id, host.id);
          } catch (recordErr) {
            this.deps.retryLater(record.id, recordErr);
          }
        },
      )
      .finally(() => this.dispatching.delete(id));
  }

  /** The switch of every app of the line on the host that the rollout covers. */
  private sendSwitches(
    record: RolloutRecord,
    host: HostRecord,
    appNames: ReadonlySet<string>,
    issued: ReadonlyMap<string, CommandRecord>,
    bodies: Map<string, CommandBody>,
    issue: IssueCommand,
  ): void {
    for (const app of appsInScope(host.inventory, record.line, appNames)) {
      const id = rolloutCommandId.switch(record.id, host.id, app.name);
      if (issued.has(id)) continue;
      const versions = movedVersions(app, record.line, record.version);
      const key = `${app.name}:${versions.image}:${versions.code}`;
      let body = bodies.get(key);
      if (body === undefined) {
        body = this.deps.apps.deployBody(
          this.deps.apps.spec(app.name),
          versions,
          record.strategy.healthyDeadlineMs,
        );
        bodies.set(key, body);
      }
      issue({ id, hostId: host.id, rolloutId: record.id, body });
    }
  }

  /**
   * The rollback of every app whose switch did not fail (succeeded, or its outcome is unknown: the host
   * may be cut off). It applies only while the app runs the rollout's version, so one that never
   * switched, or went back on its own, is not moved one further; and it stays queued for a host that is
   * away until it returns, whatever the rollout has decided meanwhile.
   */
  private sendRollbacks(
    record: RolloutRecord,
    host: HostRecord,
    appNames: ReadonlySet<string>,
    issued: ReadonlyMap<string, CommandRecord>,
    issue: IssueCommand,
  ): void {
    // An agent of protocol 1 does not know onlyFromImageVersion: it gets a rollback only for a switch
    // known to have succeeded (a rollback of an app already back would take it one further).
    const guarded = host.protocolVersion >= 2;
    for (const app of appsInScope(host.inventory, record.line, appNames)) {
      const switched = issued.get(rolloutCommandId.switch(record.id, host.id, app.name));
      if (switched?.state === "failed" || (!guarded && switched?.state !== "succeeded")) continue;
      const id = rolloutCommandId.rollback(record.id, host.id, app.name);
      if (issued.has(id)) continue;
      issue({
        id,
        hostId: host.id,
        rolloutId: record.id,
        body: {
          rollbackApp: {
            name: app.name,
            healthyDeadlineMs: record.strategy.healthyDeadlineMs,
            ...(app.imageLine === record.line
              ? { onlyFromImageVersion: record.version, onlyFromCodeVersion: 0 }
              : { onlyFromImageVersion: 0, onlyFromCodeVersion: record.version }),
          },
        },
      });
    }
  }
}
