import type { AppInstanceView, AppView, DeployEvent } from "@gild/api-client";
import {
  type AppSpec,
  appSpecHash,
  GildError,
  type Logger,
  parseAppSpec,
  type SerializedError,
  toGildError,
} from "@gild/core";
import type { AppSpecMessage, DeployApp, LogChunk } from "@gild/protocol";
import type { AgentHub } from "./agent-hub.js";
import type { CommandService } from "./command-service.js";
import { hostByName, isLabelSelector, selectHosts } from "./host-selection.js";
import type { ImageService } from "./image-service.js";
import type { AppRecord } from "./store/apps-repo.js";
import type { HostInventory, HostRecord } from "./store/hosts-repo.js";
import type { Store } from "./store/store.js";

/** The wire form of an app spec. */
export function appSpecMessage(spec: AppSpec): AppSpecMessage {
  return {
    name: spec.name,
    imageLine: spec.image,
    command: spec.command,
    env: spec.env,
    dataMount: spec.data ?? "",
    health: spec.health ? { ...spec.health, command: [...spec.health.command] } : null,
    stopTimeoutMs: spec.stopTimeoutMs,
    port: spec.port ?? 0,
    codeLine: spec.code ?? "",
    codeMount: spec.code ? (spec.codeMount ?? "") : "",
  };
}

/** The versions one deploy runs on one host: the image's, and the code's (0 without code). */
export interface DeployVersions {
  image: number;
  code: number;
}

/** The instance of `app` in a host's inventory, if it runs there. */
export function appOnHost(
  inventory: HostInventory | null,
  app: string,
): HostInventory["apps"][number] | undefined {
  return inventory?.apps.find((a) => a.name === app);
}

/** Apps: definitions on the controller, instances on hosts, manual deploy/rollback, logs. */
export class AppService {
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      store: Store;
      hub: AgentHub;
      commands: CommandService;
      images: ImageService;
      log: Logger;
    },
  ) {
    this.log = deps.log.child({ component: "apps" });
  }

  private record(name: string): AppRecord {
    const record = this.deps.store.apps.get(name);
    if (!record)
      throw new GildError("GILD_APP_NOT_FOUND", `no app named ${name}`, {
        hint: "list apps with `gild app ls`",
      });
    return record;
  }

  spec(name: string): AppSpec {
    return this.record(name).spec;
  }

  /** Hosts an app's selectors match now (a named host that has left matches nothing). */
  targets(spec: AppSpec, hosts: readonly HostRecord[] = this.deps.store.hosts.list()): HostRecord[] {
    return selectHosts(hosts, spec.hosts, { ignoreUnknown: true });
  }

  create(raw: unknown, actor: string): AppView {
    const spec = parseAppSpec(raw);
    const unknownHosts = spec.hosts.filter((s) => !isLabelSelector(s) && !this.deps.store.hosts.byName(s));
    if (unknownHosts.length > 0) {
      throw new GildError("GILD_INVALID_SPEC", `invalid app spec (unknown hosts)`, {
        details: { problems: unknownHosts.map((h) => ({ path: "hosts", message: `no host named ${h}` })) },
        hint: "list hosts with `gild hosts`; label selectors (role=web) may match none yet",
      });
    }
    this.assertLineKinds(spec);
    if (!this.deps.store.apps.insert(spec, actor, Date.now())) {
      throw new GildError("GILD_APP_EXISTS", `an app named ${spec.name} already exists`);
    }
    this.log.info({ app: spec.name, image: spec.image }, "app created");
    return this.view(this.record(spec.name));
  }

  /** An app's image must be an os line and its code a code line (either may have no version yet). */
  private assertLineKinds(spec: AppSpec): void {
    this.deps.images.assertKind(spec.image, "os");
    if (spec.code) this.deps.images.assertKind(spec.code, "code");
  }

  view(record: AppRecord, hosts: readonly HostRecord[] = this.deps.store.hosts.list()): AppView {
    const spec = record.spec;
    const specHash = appSpecHash(spec);
    const instances: AppInstanceView[] = [];
    for (const host of hosts) {
      const app = appOnHost(host.inventory, spec.name);
      if (!app) continue;
      instances.push({
        host: host.name,
        hostState: this.deps.hub.isOnline(host.id) ? "online" : host.state,
        generation: app.generation,
        imageVersion: app.imageVersion,
        state: app.state,
        health: app.health,
        healthDetail: app.healthDetail,
        healthSince: app.healthSinceMs || null,
        previousGeneration: app.previousGeneration,
        previousImageVersion: app.previousImageVersion,
        codeVersion: app.codeVersion,
        previousCodeVersion: app.previousCodeVersion,
        specCurrent: app.specHash === specHash,
      });
    }
    const targets = this.targets(spec, hosts).map((h) => h.name);
    return {
      spec,
      specHash,
      createdBy: record.createdBy,
      createdAt: record.createdAt,
      targets,
      instances,
      versions: record.versions,
    };
  }

  list(): AppView[] {
    const hosts = this.deps.store.hosts.list();
    return this.deps.store.apps.list().map((r) => this.view(r, hosts));
  }

  get(name: string): AppView {
    return this.view(this.record(name));
  }

  /** Apps (by name) that run on a line, as their image or their code: what a rollout of the line switches. */
  appsOnLine(line: string): AppSpec[] {
    return this.deps.store.apps
      .list()
      .map((r) => r.spec)
      .filter((s) => s.image === line || s.code === line);
  }

  /** The DeployApp command body for one app at one image version (and code version, 0 without code). */
  deployBody(spec: AppSpec, versions: DeployVersions, healthyDeadlineMs?: number): { deployApp: DeployApp } {
    return {
      deployApp: {
        spec: appSpecMessage(spec),
        imageVersion: versions.image,
        codeVersion: spec.code ? versions.code : 0,
        healthyDeadlineMs: healthyDeadlineMs ?? spec.healthyDeadlineMs,
        specHash: appSpecHash(spec),
      },
    };
  }

  /**
   * What one host runs after a deploy that moves `moves` (a line it does not move stays as that host
   * runs it): for a line neither moved nor on the host yet (a host new to the app), the version the app
   * was last deployed or rolled out at, else the line's latest.
   */
  private versionsFor(record: AppRecord, host: HostRecord, moves: Partial<DeployVersions>): DeployVersions {
    const spec = record.spec;
    const instance = appOnHost(host.inventory, spec.name);
    const pick = (
      line: string,
      moved: number | undefined,
      running: number | undefined,
      last: number | null,
    ) => {
      const version = moved ?? running ?? last ?? this.deps.images.latest(line)?.version;
      if (version === undefined)
        throw new GildError("GILD_IMAGE_NOT_FOUND", `${line} has no version yet`, {
          hint: `make one first: gild ${line === spec.code ? "code" : "image"} create ${line} --from-dir DIR`,
        });
      return version;
    };
    const image = pick(
      spec.image,
      moves.image,
      instance?.imageLine === spec.image ? instance.imageVersion : undefined,
      record.versions.image,
    );
    const code = spec.code
      ? pick(
          spec.code,
          moves.code,
          instance?.codeLine === spec.code ? instance.codeVersion : undefined,
          record.versions.code,
        )
      : 0;
    return { image, code };
  }

  /**
   * `gild app deploy`: switch an app to versions on its hosts (or some of them), the hosts in parallel:
   * pull what a host misses, then DeployApp (health gate and local rollback on the host). `moves` names
   * the versions to go to (image, code or both); the versions moved are remembered once a host took them.
   */
  async deploy(
    name: string,
    moves: Partial<DeployVersions>,
    hostNames: string[] | undefined,
    onEvent: (e: DeployEvent) => void,
  ): Promise<DeployEvent[]> {
    const record = this.record(name);
    const spec = record.spec;
    if (moves.image !== undefined) this.deps.images.get(spec.image, moves.image);
    if (moves.code !== undefined) {
      if (!spec.code) throw new GildError("GILD_BAD_REQUEST", `${name} has no code line`);
      this.deps.images.get(spec.code, moves.code);
    }
    const targets = this.targets(spec);
    const hosts = hostNames && hostNames.length > 0 ? selectHosts(targets, hostNames) : targets;
    if (hosts.length === 0)
      throw new GildError("GILD_BAD_REQUEST", `${name} has no hosts to deploy to`, {
        hint: "its hosts selectors match no joined host",
      });
    const events = await Promise.all(hosts.map((host) => this.deployToHost(record, host, moves, onEvent)));
    if (events.some((e) => e.state === "done")) this.deps.store.apps.setVersions(name, moves);
    return events;
  }

  /** Pull what the host misses and switch it (the outcome as the host's last event, never a throw). */
  private async deployToHost(
    record: AppRecord,
    host: HostRecord,
    moves: Partial<DeployVersions>,
    onEvent: (e: DeployEvent) => void,
  ): Promise<DeployEvent> {
    const spec = record.spec;
    const emit = (e: DeployEvent) => {
      onEvent(e);
      return e;
    };
    try {
      if (spec.code && host.protocolVersion < 2)
        throw new GildError(
          "GILD_AGENT_TOO_OLD",
          `${host.name}'s agent speaks protocol ${host.protocolVersion}, which cannot mount app code`,
          { hint: "upgrade gild on that host (docs/deployment.md, Upgrades)" },
        );
      const versions = this.versionsFor(record, host, moves);
      const lines: Array<[string, number]> = [[spec.image, versions.image]];
      if (spec.code) lines.push([spec.code, versions.code]);
      for (const [line, version] of lines) {
        const pull = await this.deps.images.issuePull(host, line, version);
        if (!pull) continue;
        emit({ host: host.name, state: "pulling" });
        const pulled = await this.deps.commands.wait(pull.commandId, {
          onProgress: (progress) => onEvent({ host: host.name, state: "pulling", progress }),
        });
        if (pulled.state === "failed")
          return emit({ host: host.name, state: "failed", ...(pulled.error ? { error: pulled.error } : {}) });
      }
      emit({ host: host.name, state: "switching" });
      const id = this.deps.commands.issue({ hostId: host.id, body: this.deployBody(spec, versions) });
      return emit(this.deployEvent(host.name, await this.deps.commands.wait(id)));
    } catch (err) {
      return emit({ host: host.name, state: "failed", error: toGildError(err).toJSON() });
    }
  }

  /**
   * The hosts an app names after adding and removing some, checked: added names must be joined hosts
   * (selectors may match none yet), removed ones must be among the app's, and one must be left.
   */
  checkHostChange(
    name: string,
    change: { add?: string[]; remove?: string[] },
  ): { spec: AppSpec; hosts: string[]; add: string[]; remove: string[] } {
    const spec = this.record(name).spec;
    const add = (change.add ?? []).map((h) => h.trim()).filter(Boolean);
    const remove = (change.remove ?? []).map((h) => h.trim()).filter(Boolean);
    if (add.length === 0 && remove.length === 0)
      throw new GildError("GILD_BAD_REQUEST", "name hosts to add or to remove");
    const unknown = add.filter((s) => !isLabelSelector(s) && !this.deps.store.hosts.byName(s));
    if (unknown.length > 0)
      throw new GildError("GILD_HOST_NOT_FOUND", `no host named ${unknown.join(", ")}`, {
        hint: "list hosts with `gild hosts`",
      });
    const notListed = remove.filter((s) => !spec.hosts.includes(s));
    if (notListed.length > 0)
      throw new GildError(
        "GILD_BAD_REQUEST",
        `${notListed.join(", ")} ${notListed.length > 1 ? "are" : "is"} not among ${name}'s hosts (${spec.hosts.join(", ")})`,
        {
          hint: "a host matched by a label selector leaves the app when its labels change, or when the selector is removed",
        },
      );
    const hosts = [
      ...spec.hosts.filter((h) => !remove.includes(h)),
      ...add.filter((h) => !spec.hosts.includes(h)),
    ];
    if (hosts.length === 0)
      throw new GildError("GILD_INVALID_SPEC", `${name} would have no hosts left`, {
        details: { problems: [{ path: "hosts", message: "at least one host or label selector" }] },
        hint: `remove the app instead: gild app rm ${name}`,
      });
    return { spec, hosts, add, remove };
  }

  /**
   * `gild app hosts add|rm`: change the hosts an app names, then bring the hosts that newly match it to
   * the app (image, code and an empty data dir, through the health gate) and take it off the hosts that
   * no longer do (RemoveApp; its data too with purgeData). The definition changes first: a host that
   * fails is reported, and the next `gild app deploy` or hosts change tries it again.
   */
  async changeHosts(
    name: string,
    change: { add?: string[]; remove?: string[]; purgeData?: boolean },
    onEvent: (e: DeployEvent) => void,
  ): Promise<{ app: AppView; hosts: DeployEvent[] }> {
    const { spec, hosts, add, remove } = this.checkHostChange(name, change);
    const all = this.deps.store.hosts.list();
    const before = new Set(this.targets(spec, all).map((h) => h.id));
    const next: AppSpec = Object.freeze({ ...spec, hosts });
    this.deps.store.apps.updateSpec(next, Date.now());
    const updated = this.record(name);
    const after = this.targets(next, all);
    const afterIds = new Set(after.map((h) => h.id));
    // Named hosts that were added are brought to the app even when a selector matched them already
    // (they may never have got it); hosts matched before and without the app get it too.
    const joining = after.filter(
      (h) => !before.has(h.id) || add.includes(h.name) || !appOnHost(h.inventory, name),
    );
    const leaving = all.filter((h) => before.has(h.id) && !afterIds.has(h.id));
    this.log.info({ app: name, add, remove }, "app hosts changed");
    const events = await Promise.all([
      ...joining.map((host) => this.deployToHost(updated, host, {}, onEvent)),
      ...leaving.map(async (host): Promise<DeployEvent> => {
        const event = await this.removeFromHost(host, name, change.purgeData === true);
        onEvent(event);
        return event;
      }),
    ]);
    return { app: this.view(this.record(name)), hosts: events };
  }

  private async removeFromHost(host: HostRecord, name: string, purgeData: boolean): Promise<DeployEvent> {
    if (!appOnHost(host.inventory, name)) return { host: host.name, state: "removed" };
    const id = this.deps.commands.issue({ hostId: host.id, body: { removeApp: { name, purgeData } } });
    const outcome = await this.deps.commands.wait(id);
    return outcome.state === "succeeded"
      ? { host: host.name, state: "removed" }
      : { host: host.name, state: "failed", ...(outcome.error ? { error: outcome.error } : {}) };
  }

  private deployEvent(host: string, outcome: Awaited<ReturnType<CommandService["wait"]>>): DeployEvent {
    const result = (outcome.result ?? {}) as {
      generation?: number;
      previousGeneration?: number;
      rolledBack?: boolean;
      rollbackUnhealthy?: boolean;
      reason?: string;
      rollbackReason?: string;
    };
    if (outcome.state === "succeeded") {
      return {
        host,
        state: "done",
        generation: result.generation ?? 0,
        previousGeneration: result.previousGeneration ?? 0,
      };
    }
    const reason = result.rollbackUnhealthy
      ? `${result.reason ?? ""}; back on g${result.generation ?? 0}, which is not healthy either: ${result.rollbackReason ?? ""}`
      : result.reason;
    return {
      host,
      state: result.rolledBack ? (result.rollbackUnhealthy ? "rollback-failed" : "rolled-back") : "failed",
      generation: result.generation ?? 0,
      ...(reason ? { reason } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
    };
  }

  /** `gild app rollback`: back to each host's previous generation (no download). */
  async rollback(
    name: string,
    hostNames: string[] | undefined,
    onEvent: (e: DeployEvent) => void,
  ): Promise<DeployEvent[]> {
    const spec = this.spec(name);
    const withApp = this.deps.store.hosts.list().filter((h) => appOnHost(h.inventory, name));
    const hosts = hostNames && hostNames.length > 0 ? selectHosts(withApp, hostNames) : withApp;
    return Promise.all(
      hosts.map(async (host) => {
        onEvent({ host: host.name, state: "switching" });
        const id = this.deps.commands.issue({
          hostId: host.id,
          body: {
            rollbackApp: {
              name,
              healthyDeadlineMs: spec.healthyDeadlineMs,
              onlyFromImageVersion: 0,
              onlyFromCodeVersion: 0,
            },
          },
        });
        const event = this.deployEvent(host.name, await this.deps.commands.wait(id));
        onEvent(event);
        return event;
      }),
    );
  }

  /** Remove an app: RemoveApp on every host that has it, then the definition. */
  async remove(
    name: string,
    purgeData: boolean,
  ): Promise<Array<{ host: string; state: string; error?: SerializedError }>> {
    this.record(name);
    const hosts = this.deps.store.hosts.list().filter((h) => appOnHost(h.inventory, name));
    const results = await Promise.all(hosts.map((host) => this.removeFromHost(host, name, purgeData)));
    if (results.every((r) => r.state === "removed")) this.deps.store.apps.delete(name);
    return results;
  }

  /** A chunk of an app's container output on one host. */
  async logs(
    name: string,
    hostName: string,
    options: { generation?: number; offset?: number; maxBytes?: number },
  ): Promise<LogChunk & { data: Uint8Array }> {
    this.record(name);
    const host = hostByName(this.deps.store.hosts, hostName);
    if (!this.deps.hub.isOnline(host.id))
      throw new GildError("GILD_HOST_OFFLINE", `${hostName} is not connected; its logs stay on the host`);
    const id = this.deps.commands.issue({
      hostId: host.id,
      body: {
        readLogs: {
          name,
          generation: options.generation ?? 0,
          // The API's offset: from that byte, or (negative) that many bytes from the end.
          from:
            options.offset === undefined || options.offset < 0
              ? { tailBytes: -(options.offset ?? -65_536) }
              : { offset: options.offset },
          maxBytes: options.maxBytes ?? 65_536,
        },
      },
    });
    const outcome = await this.deps.commands.wait(id, { signal: AbortSignal.timeout(30_000) });
    if (outcome.state === "failed") {
      const e = outcome.error;
      throw new GildError(
        e?.code === "GILD_NOT_FOUND" || e?.code === "GILD_APP_NOT_FOUND" ? e.code : "GILD_COMMAND_FAILED",
        e?.message ?? "reading logs failed",
      );
    }
    const r = (outcome.result ?? {}) as {
      generation?: number;
      data?: string;
      nextOffset?: number;
      size?: number;
    };
    return {
      generation: r.generation ?? 0,
      data: Buffer.from(r.data ?? "", "base64"),
      nextOffset: r.nextOffset ?? 0,
      size: r.size ?? 0,
    };
  }
}
