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
  };
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
    if (!this.deps.store.apps.insert(spec, actor, Date.now())) {
      throw new GildError("GILD_APP_EXISTS", `an app named ${spec.name} already exists`);
    }
    this.log.info({ app: spec.name, image: spec.image }, "app created");
    return this.view(this.record(spec.name));
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
        specCurrent: app.specHash === specHash,
      });
    }
    const targets = this.targets(spec, hosts).map((h) => h.name);
    return { spec, specHash, createdBy: record.createdBy, createdAt: record.createdAt, targets, instances };
  }

  list(): AppView[] {
    const hosts = this.deps.store.hosts.list();
    return this.deps.store.apps.list().map((r) => this.view(r, hosts));
  }

  get(name: string): AppView {
    return this.view(this.record(name));
  }

  /** Apps (by name) that run on a line: what a rollout of the line switches. */
  appsOnLine(line: string): AppSpec[] {
    return this.deps.store.apps
      .list()
      .map((r) => r.spec)
      .filter((s) => s.image === line);
  }

  /** The DeployApp command body for one app at one version. */
  deployBody(spec: AppSpec, version: number, healthyDeadlineMs?: number): { deployApp: DeployApp } {
    return {
      deployApp: {
        spec: appSpecMessage(spec),
        imageVersion: version,
        healthyDeadlineMs: healthyDeadlineMs ?? spec.healthyDeadlineMs,
        specHash: appSpecHash(spec),
      },
    };
  }

  /**
   * `gild app deploy`: switch an app to a version on its hosts (or some of them), one host at a time
   * in parallel: pull the image if missing, then DeployApp (health gate and local rollback on the host).
   */
  async deploy(
    name: string,
    version: number,
    hostNames: string[] | undefined,
    onEvent: (e: DeployEvent) => void,
  ): Promise<DeployEvent[]> {
    const spec = this.spec(name);
    this.deps.images.get(spec.image, version);
    const targets = this.targets(spec);
    const hosts = hostNames && hostNames.length > 0 ? selectHosts(targets, hostNames) : targets;
    if (hosts.length === 0)
      throw new GildError("GILD_BAD_REQUEST", `${name} has no hosts to deploy to`, {
        hint: "its hosts selectors match no joined host",
      });
    return Promise.all(
      hosts.map(async (host): Promise<DeployEvent> => {
        const emit = (e: DeployEvent) => {
          onEvent(e);
          return e;
        };
        try {
          const pull = await this.deps.images.issuePull(host, spec.image, version);
          if (pull) {
            emit({ host: host.name, state: "pulling" });
            const pulled = await this.deps.commands.wait(pull.commandId, {
              onProgress: (progress) => onEvent({ host: host.name, state: "pulling", progress }),
            });
            if (pulled.state === "failed")
              return emit({
                host: host.name,
                state: "failed",
                ...(pulled.error ? { error: pulled.error } : {}),
              });
          }
          emit({ host: host.name, state: "switching" });
          const id = this.deps.commands.issue({ hostId: host.id, body: this.deployBody(spec, version) });
          return emit(this.deployEvent(host.name, await this.deps.commands.wait(id)));
        } catch (err) {
          const e = toGildError(err);
          return emit({ host: host.name, state: "failed", error: e.toJSON() });
        }
      }),
    );
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
          body: { rollbackApp: { name, healthyDeadlineMs: spec.healthyDeadlineMs, onlyFromImageVersion: 0 } },
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
    const results = await Promise.all(
      hosts.map(async (host) => {
        const id = this.deps.commands.issue({ hostId: host.id, body: { removeApp: { name, purgeData } } });
        const outcome = await this.deps.commands.wait(id);
        return outcome.state === "succeeded"
          ? { host: host.name, state: "removed" }
          : { host: host.name, state: "failed", ...(outcome.error ? { error: outcome.error } : {}) };
      }),
    );
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
