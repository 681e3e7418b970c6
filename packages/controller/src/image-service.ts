import type { ImageSourceRequest, ImageView, PushEvent } from "@gild/api-client";
import type { StreamCapabilities } from "@gild/btrfs";
import {
  GildError,
  type ImageVersionInfo,
  type LineKind,
  type Logger,
  type SerializedError,
  toGildError,
} from "@gild/core";
import { decodeManifest } from "@gild/protocol";
import type { ArtifactService } from "./artifact-service.js";
import type { CommandService } from "./command-service.js";
import { badPeersOf, type PeerSourcing } from "./peer-sourcing.js";
import type { ControllerImageBuilder, ControllerImageStore } from "./services.js";
import type { HostInventory, HostRecord } from "./store/hosts-repo.js";
import type { ImageRecord } from "./store/images-repo.js";
import type { Store } from "./store/store.js";

/** Where a new version comes from, as the API accepts it. */
/** The version's uuid as a copy on `inventory` would carry it, i.e. whether the host has it. */
export function hostHasVersion(
  inventory: HostInventory | null,
  image: { line: string; uuid: string },
): boolean {
  return (inventory?.images ?? []).some((i) => i.line === image.line && i.receivedUuid === image.uuid);
}

/**
 * The parent for an incremental stream to a host: a version of the line the host holds, matched by
 * the received_uuid of its copy (never by name), preferring the newest older version.
 */
export function pickParent(
  inventory: HostInventory | null,
  versions: readonly ImageRecord[],
  target: number,
): number | null {
  const held = new Set((inventory?.images ?? []).map((i) => i.receivedUuid).filter((u) => u.length > 0));
  const candidates = versions.filter((v) => v.version !== target && held.has(v.uuid)).map((v) => v.version);
  const older = candidates.filter((v) => v < target).sort((a, b) => b - a);
  if (older.length > 0) return older[0] as number;
  const newer = candidates.sort((a, b) => a - b);
  return newer[0] ?? null;
}

/** Golden image versions on the controller's pool, their statuses, and delivery to hosts. */
export class ImageService {
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      store: Store;
      images: ControllerImageStore;
      builder: ControllerImageBuilder;
      artifacts: ArtifactService;
      commands: CommandService;
      capabilities: StreamCapabilities;
      compressedStreams: boolean;
      /** Peer fan-out: who each pull fetches chunks from besides the controller. */
      peers?: PeerSourcing;
      log: Logger;
    },
  ) {
    this.log = deps.log.child({ component: "images" });
    // A pull that failed may have met a damaged or missing artifact file: the next pull looks again.
    deps.commands.addListener({
      onFinished: (record) => {
        if (record.kind === "pullImage" && record.state === "failed") deps.artifacts.forgetChecks();
      },
    });
  }

  /** Make the store agree with the pool (the pool is the truth about which versions exist). */
  async reconcile(): Promise<void> {
    const onPool = await this.deps.images.list();
    const seen = new Set<string>();
    for (const info of onPool) {
      seen.add(`${info.line}@${info.version}`);
      const known = this.deps.store.images.get(info.line, info.version);
      if (!known || known.uuid !== info.uuid)
        this.record(info, known?.uuid === info.uuid ? known.status : "candidate");
    }
    for (const record of this.deps.store.images.list()) {
      if (!seen.has(`${record.line}@${record.version}`))
        this.deps.store.images.delete(record.line, record.version);
    }
  }

  private record(info: ImageVersionInfo, status: ImageRecord["status"] = "candidate"): ImageRecord {
    const record: ImageRecord = {
      line: info.line,
      version: info.version,
      kind: info.kind,
      uuid: info.uuid,
      status,
      parent: info.parent,
      sizeBytes: info.sizeBytes,
      origin: info.origin,
      createdBy: info.createdBy,
      createdAt: Date.parse(info.createdAt),
    };
    this.deps.store.images.upsert(record);
    return record;
  }

  /** The stream version to send a host: 2 (compressed data) only when both ends support it. */
  streamVersionFor(host: HostRecord): 1 | 2 {
    return this.deps.compressedStreams &&
      this.deps.capabilities.canSendCompressed &&
      host.maxStreamVersion >= 2
      ? 2
      : 1;
  }

  list(line?: string, withHosts = false, kind?: LineKind): ImageView[] {
    const records = this.deps.store.images.list(line).filter((r) => kind === undefined || r.kind === kind);
    if (!withHosts) return records;
    const hosts = this.deps.store.hosts.list();
    return records.map((r) => ({
      ...r,
      hosts: hosts.filter((h) => hostHasVersion(h.inventory, r)).map((h) => h.name),
    }));
  }

  get(line: string, version: number): ImageRecord {
    const record = this.deps.store.images.get(line, version);
    if (!record) throw new GildError("GILD_IMAGE_NOT_FOUND", `no image ${line}@${version} on the controller`);
    return record;
  }

  latest(line: string): ImageRecord | undefined {
    return this.deps.store.images.list(line).at(-1);
  }

  async create(
    line: string,
    source: ImageSourceRequest,
    actor: string,
    onOutput?: (line: string) => void,
    kind: LineKind = "os",
  ): Promise<ImageRecord> {
    this.assertKind(line, kind);
    if (kind === "code" && source.kind !== "dir")
      throw new GildError(
        "GILD_IMAGE_SOURCE_INVALID",
        "a code version is made from a directory (--from-dir)",
      );
    const build = { createdBy: actor, onOutput, kind };
    const info =
      source.kind === "dir"
        ? await this.deps.builder.createFromDir(line, source.path, build)
        : await this.deps.builder.createFromDebootstrap(
            line,
            {
              suite: source.suite,
              include: source.include,
              mirror: source.mirror,
              cacheDir: source.cacheDir,
            },
            build,
          );
    return this.afterCreate(info);
  }

  async update(
    line: string,
    command: string[],
    options: { from?: number; env?: Record<string, string> },
    actor: string,
    onOutput?: (line: string) => void,
  ): Promise<ImageRecord> {
    this.assertKind(line, "os");
    const info = await this.deps.builder.update(line, command, { ...options, createdBy: actor, onOutput });
    return this.afterCreate(info);
  }

  private async afterCreate(info: ImageVersionInfo): Promise<ImageRecord> {
    const record = this.record(info);
    // Make the stream most hosts will need now, so the first push does not wait for it: the delta from
    // the version before, or the full stream of a line's first version.
    const streamVersion: 1 | 2 =
      this.deps.compressedStreams && this.deps.capabilities.canSendCompressed ? 2 : 1;
    const parent = info.parent ?? (info.version > 1 ? info.version - 1 : null);
    try {
      if (parent !== null && (await this.deps.images.exists(info.line, parent))) {
        await this.deps.artifacts.ensure(info.line, info.version, parent, streamVersion);
      } else {
        await this.deps.artifacts.ensure(info.line, info.version, null, streamVersion);
      }
    } catch (err) {
      // The version exists; its artifacts are made again on demand at the first push.
      this.log.warn(
        { image: `${info.line}@${info.version}`, err: (err as Error).message },
        "could not pre-build artifact",
      );
    }
    return record;
  }

  /** GILD_LINE_KIND_MISMATCH unless `line` is new or of `kind` (line names are one namespace). */
  assertKind(line: string, kind: LineKind): void {
    const actual = this.deps.store.images.kindOf(line);
    if (actual === undefined || actual === kind) return;
    throw new GildError(
      "GILD_LINE_KIND_MISMATCH",
      `${line} is ${actual === "code" ? "a code line" : "an os image line"}, not ${kind === "code" ? "a code line" : "an os image line"}`,
      {
        hint:
          actual === "code"
            ? `make its next version with: gild code update ${line} --from-dir DIR`
            : `make its next version with: gild image update ${line} COMMAND, or choose another name`,
      },
    );
  }

  /** Remove a version from the controller (and its artifacts); refused while something uses it. */
  async remove(
    line: string,
    version: number,
    inUse: (line: string, version: number) => string | undefined,
  ): Promise<void> {
    this.get(line, version);
    const user = inUse(line, version);
    if (user) throw new GildError("GILD_IMAGE_IN_USE", `${line}@${version} is in use by ${user}`);
    await this.deps.images.remove(line, version);
    await this.deps.artifacts.removeForImage(line, version);
    this.deps.store.images.delete(line, version);
  }

  setStatus(line: string, version: number, status: ImageRecord["status"]): void {
    this.deps.store.images.setStatus(line, version, status);
  }

  /**
   * Ask a host to pull a version: pick its parent by received_uuid, make or reuse the artifact,
   * issue the signed PullImage command. Returns the command id (undefined if already present).
   */
  async issuePull(
    host: HostRecord,
    line: string,
    version: number,
    options: { commandId?: string; rolloutId?: string } = {},
  ) {
    const image = this.get(line, version);
    if (hostHasVersion(host.inventory, image)) return undefined;
    const parent = pickParent(host.inventory, this.deps.store.images.list(line), version);
    const artifact = await this.deps.artifacts.ensure(line, version, parent, this.streamVersionFor(host));
    // Peers can serve only what their receivers can check chunk by chunk: manifests with chunk digests.
    const chunked = (decodeManifest(artifact.manifest).chunkSize ?? 0) > 0;
    const peerSources = chunked && this.deps.peers ? this.deps.peers.sourcesFor(artifact.id, host) : [];
    const commandId = this.deps.commands.issue({
      hostId: host.id,
      ...(options.commandId ? { id: options.commandId } : {}),
      ...(options.rolloutId ? { rolloutId: options.rolloutId } : {}),
      body: {
        pullImage: {
          manifest: artifact.manifest,
          signature: artifact.signature,
          ...(peerSources.length > 0 ? { peerSources } : {}),
        },
      },
    });
    return { commandId, artifact };
  }

  /** Remove a version from hosts' pools (RemoveImage); each host answers for itself. */
  async evict(
    line: string,
    version: number,
    hosts: HostRecord[],
  ): Promise<Array<{ host: string; state: "removed" | "failed"; error?: SerializedError }>> {
    return Promise.all(
      hosts.map(async (host) => {
        const id = this.deps.commands.issue({ hostId: host.id, body: { removeImage: { line, version } } });
        const outcome = await this.deps.commands.wait(id);
        return outcome.state === "succeeded"
          ? { host: host.name, state: "removed" as const }
          : { host: host.name, state: "failed" as const, ...(outcome.error ? { error: outcome.error } : {}) };
      }),
    );
  }

  /** Push a version to hosts and report each host's progress; resolves with every host's final event. */
  async push(
    line: string,
    version: number,
    hosts: HostRecord[],
    onEvent: (e: PushEvent) => void,
  ): Promise<PushEvent[]> {
    this.get(line, version);
    const results = await Promise.all(
      hosts.map(async (host): Promise<PushEvent> => {
        const emit = (e: PushEvent) => {
          onEvent(e);
          return e;
        };
        emit({ host: host.name, state: "preparing" });
        try {
          const pull = await this.issuePull(host, line, version);
          if (!pull) return emit({ host: host.name, state: "present" });
          const artifact = {
            id: pull.artifact.id,
            sizeBytes: pull.artifact.sizeBytes,
            parentVersion: pull.artifact.parentVersion,
            streamVersion: pull.artifact.streamVersion,
          };
          emit({ host: host.name, state: "transferring", artifact });
          const outcome = await this.deps.commands.wait(pull.commandId, {
            onProgress: (progress) => onEvent({ host: host.name, state: "transferring", artifact, progress }),
          });
          if (outcome.state === "failed") {
            // A host that refused the bytes may have met a damaged artifact file: check it, and drop it
            // if so, so that the next push makes it again instead of failing the same way.
            const code = outcome.error?.code;
            if (code === "GILD_STREAM_CORRUPT" || code === "GILD_STREAM_HASH_MISMATCH") {
              await this.deps.artifacts.verifyOrDiscard(artifact.id);
            }
            return emit({ host: host.name, state: "failed", artifact, error: outcome.error ?? undefined });
          }
          const result = outcome.result ?? {};
          const badPeers = badPeersOf(result).map((b) => ({
            host: this.deps.store.hosts.byId(b.hostId)?.name ?? b.hostId,
            reason: b.reason,
          }));
          return emit({
            host: host.name,
            state: result.alreadyPresent ? "present" : "done",
            artifact,
            resumedFrom: Number(result.resumedFrom ?? 0),
            bytesTransferred: Number(result.bytesTransferred ?? 0),
            ...(Number(result.bytesFromPeers ?? 0) > 0
              ? { bytesFromPeers: Number(result.bytesFromPeers) }
              : {}),
            ...(badPeers.length > 0 ? { badPeers } : {}),
          });
        } catch (err) {
          const e = toGildError(err);
          return emit({ host: host.name, state: "failed", error: e.toJSON() });
        }
      }),
    );
    return results;
  }
}
