import type { HealthSpec } from "@gild/core";
import type {
  AgentMessage,
  AppInstance,
  AppSpecMessage,
  Command,
  CommandState,
  CommandStatus,
  ControllerMessage,
  DeployResult,
  Hello,
  Inventory,
  ReadLogs,
  TransferProgress,
  WireError,
} from "./model.js";
import { commandKindOf } from "./model.js";
import { bool, bytes, list, malformed, map, num, str } from "./wire-fields.js";

// What protocol 1 and protocol 2 decode alike: the messages and fields that are the same in both (by
// name and meaning), read from either version's generated type. What differs (enums, oneofs, the
// health probe, the log offset) comes in as a function from wire-v1.ts or wire-v2.ts.

type Opt<T> = T | null | undefined;

interface SpecFields<Health> {
  name?: Opt<string>;
  imageLine?: Opt<string>;
  command?: Opt<string[]>;
  env?: Opt<Record<string, string>>;
  dataMount?: Opt<string>;
  health?: Opt<Health>;
  stopTimeoutMs?: Opt<number>;
  port?: Opt<number>;
  codeLine?: Opt<string>;
  codeMount?: Opt<string>;
}

interface CommandFields<Health, Logs> {
  commandId?: Opt<string>;
  pullImage?: Opt<{
    manifest?: Opt<Uint8Array>;
    signature?: Opt<Uint8Array>;
    peerSources?: Opt<
      Array<{
        hostId?: Opt<string>;
        address?: Opt<string>;
        ticket?: Opt<Uint8Array>;
        ticketSignature?: Opt<Uint8Array>;
        downloading?: Opt<boolean>;
      }>
    >;
  }>;
  removeImage?: Opt<{ line?: Opt<string>; version?: Opt<number> }>;
  deployApp?: Opt<{
    spec?: Opt<SpecFields<Health>>;
    imageVersion?: Opt<number>;
    healthyDeadlineMs?: Opt<number>;
    specHash?: Opt<string>;
    codeVersion?: Opt<number>;
  }>;
  rollbackApp?: Opt<{
    name?: Opt<string>;
    healthyDeadlineMs?: Opt<number>;
    onlyFromImageVersion?: Opt<number>;
    onlyFromCodeVersion?: Opt<number>;
  }>;
  removeApp?: Opt<{ name?: Opt<string>; purgeData?: Opt<boolean> }>;
  readLogs?: Opt<Logs>;
  runHostCommand?: Opt<{ argv?: Opt<string[]>; timeoutMs?: Opt<number> }>;
  rebootHost?: Opt<object>;
}

function decodeSpec<Health>(s: Opt<SpecFields<Health>>, health: (h: Opt<Health>) => HealthSpec | null) {
  if (!s) throw malformed("DeployApp without a spec");
  const spec: AppSpecMessage = {
    name: str(s.name),
    imageLine: str(s.imageLine),
    command: list(s.command),
    env: map(s.env),
    dataMount: str(s.dataMount),
    health: health(s.health),
    stopTimeoutMs: num(s.stopTimeoutMs),
    port: num(s.port),
    codeLine: str(s.codeLine),
    codeMount: str(s.codeMount),
  };
  return spec;
}

/** Hello is the same in every protocol version: decoded here whatever the agent speaks. */
export function decodeHello(h: {
  protocolVersion?: Opt<number>;
  hostId?: Opt<string>;
  hostName?: Opt<string>;
  agentVersion?: Opt<string>;
  kernelVersion?: Opt<string>;
  btrfsProgsVersion?: Opt<string>;
  labels?: Opt<Record<string, string>>;
  facts?: Opt<Record<string, string>>;
  maxStreamVersion?: Opt<number>;
}): Hello {
  return {
    protocolVersion: num(h.protocolVersion),
    hostId: str(h.hostId),
    hostName: str(h.hostName),
    agentVersion: str(h.agentVersion),
    kernelVersion: str(h.kernelVersion),
    btrfsProgsVersion: str(h.btrfsProgsVersion),
    labels: map(h.labels),
    facts: map(h.facts),
    maxStreamVersion: num(h.maxStreamVersion),
  };
}

/**
 * A Command of either version as the model. An empty one (a kind of a newer version) keeps its id, so
 * it still gets an answer (unknown kind).
 */
export function decodeCommandWith<Health, Logs>(
  c: CommandFields<Health, Logs>,
  readers: {
    health: (h: Opt<Health>) => HealthSpec | null;
    readLogs: (r: Logs) => ReadLogs["from"];
  },
): Command {
  const commandId = str(c.commandId);
  switch (commandKindOf(c)) {
    case "pullImage": {
      const p = c.pullImage ?? {};
      const peerSources = (p.peerSources ?? []).map((s) => ({
        hostId: str(s.hostId),
        address: str(s.address),
        ticket: bytes(s.ticket),
        ticketSignature: bytes(s.ticketSignature),
        ...(s.downloading ? { downloading: true } : {}),
      }));
      return {
        commandId,
        pullImage: {
          manifest: bytes(p.manifest),
          signature: bytes(p.signature),
          ...(peerSources.length > 0 ? { peerSources } : {}),
        },
      };
    }
    case "removeImage": {
      const r = c.removeImage ?? {};
      return { commandId, removeImage: { line: str(r.line), version: num(r.version) } };
    }
    case "deployApp": {
      const d = c.deployApp ?? {};
      return {
        commandId,
        deployApp: {
          spec: decodeSpec(d.spec, readers.health),
          imageVersion: num(d.imageVersion),
          healthyDeadlineMs: num(d.healthyDeadlineMs),
          specHash: str(d.specHash),
          codeVersion: num(d.codeVersion),
        },
      };
    }
    case "rollbackApp": {
      const r = c.rollbackApp ?? {};
      return {
        commandId,
        rollbackApp: {
          name: str(r.name),
          healthyDeadlineMs: num(r.healthyDeadlineMs),
          onlyFromImageVersion: num(r.onlyFromImageVersion),
          onlyFromCodeVersion: num(r.onlyFromCodeVersion),
        },
      };
    }
    case "removeApp": {
      const r = c.removeApp ?? {};
      return { commandId, removeApp: { name: str(r.name), purgeData: bool(r.purgeData) } };
    }
    case "readLogs": {
      const r = c.readLogs as Logs & {
        name?: Opt<string>;
        generation?: Opt<number>;
        maxBytes?: Opt<number>;
      };
      return {
        commandId,
        readLogs: {
          name: str(r.name),
          generation: num(r.generation),
          from: readers.readLogs(r),
          maxBytes: num(r.maxBytes),
        },
      };
    }
    case "runHostCommand": {
      const r = c.runHostCommand ?? {};
      return { commandId, runHostCommand: { argv: list(r.argv), timeoutMs: num(r.timeoutMs) } };
    }
    case "rebootHost":
      return { commandId, rebootHost: {} };
    default:
      return { commandId } as Command;
  }
}

interface StatusFields<Progress, ErrorFields> {
  commandId?: Opt<string>;
  state?: Opt<number>;
  progress?: Opt<Progress>;
  error?: Opt<ErrorFields>;
  replayed?: Opt<boolean>;
  pull?: Opt<{
    uuid?: Opt<string>;
    receivedUuid?: Opt<string>;
    bytesTransferred?: Opt<number>;
    alreadyPresent?: Opt<boolean>;
    resumedFrom?: Opt<number>;
    badPeers?: Opt<Array<{ hostId?: Opt<string>; reason?: Opt<string> }>>;
    bytesFromPeers?: Opt<number>;
  }>;
  deploy?: Opt<{
    name?: Opt<string>;
    generation?: Opt<number>;
    imageVersion?: Opt<number>;
    rolledBack?: Opt<boolean>;
    reason?: Opt<string>;
    previousGeneration?: Opt<number>;
    rollbackUnhealthy?: Opt<boolean>;
    rollbackReason?: Opt<string>;
    unchanged?: Opt<boolean>;
    codeVersion?: Opt<number>;
  }>;
  logs?: Opt<{
    generation?: Opt<number>;
    data?: Opt<Uint8Array>;
    nextOffset?: Opt<number>;
    size?: Opt<number>;
  }>;
  hostCommand?: Opt<{ exitCode?: Opt<number>; outputTail?: Opt<string>; rebootRequired?: Opt<boolean> }>;
}

function decodeDeployResult(d: NonNullable<StatusFields<unknown, unknown>["deploy"]>): DeployResult {
  return {
    name: str(d.name),
    generation: num(d.generation),
    imageVersion: num(d.imageVersion),
    rolledBack: bool(d.rolledBack),
    reason: str(d.reason),
    previousGeneration: num(d.previousGeneration),
    rollbackUnhealthy: bool(d.rollbackUnhealthy),
    rollbackReason: str(d.rollbackReason),
    unchanged: bool(d.unchanged),
    codeVersion: num(d.codeVersion),
  };
}

/** A CommandStatus of either version as the model. */
export function decodeStatusWith<Progress, ErrorFields>(
  s: StatusFields<Progress, ErrorFields>,
  readers: {
    state: (state: Opt<number>) => CommandState;
    progress: (p: Progress) => TransferProgress;
    error: (e: ErrorFields) => WireError;
  },
): CommandStatus {
  const out: CommandStatus = {
    commandId: str(s.commandId),
    state: readers.state(s.state),
    progress: s.progress ? readers.progress(s.progress) : null,
    error: s.error ? readers.error(s.error) : null,
    replayed: bool(s.replayed),
  };
  if (s.pull) {
    out.pull = {
      uuid: str(s.pull.uuid),
      receivedUuid: str(s.pull.receivedUuid),
      bytesTransferred: num(s.pull.bytesTransferred),
      alreadyPresent: bool(s.pull.alreadyPresent),
      resumedFrom: num(s.pull.resumedFrom),
    };
    const badPeers = (s.pull.badPeers ?? []).map((b) => ({ hostId: str(b.hostId), reason: str(b.reason) }));
    if (badPeers.length > 0) out.pull.badPeers = badPeers;
    if (num(s.pull.bytesFromPeers) > 0) out.pull.bytesFromPeers = num(s.pull.bytesFromPeers);
  }
  if (s.deploy) out.deploy = decodeDeployResult(s.deploy);
  if (s.logs) {
    out.logs = {
      generation: num(s.logs.generation),
      data: bytes(s.logs.data),
      nextOffset: num(s.logs.nextOffset),
      size: num(s.logs.size),
    };
  }
  if (s.hostCommand) {
    out.hostCommand = {
      exitCode: num(s.hostCommand.exitCode),
      outputTail: str(s.hostCommand.outputTail),
      rebootRequired: bool(s.hostCommand.rebootRequired),
    };
  }
  return out;
}

interface AppFields<State, Health> {
  name?: Opt<string>;
  generation?: Opt<number>;
  imageLine?: Opt<string>;
  imageVersion?: Opt<number>;
  state?: State;
  health?: Health;
  healthDetail?: Opt<string>;
  healthSinceMs?: Opt<number>;
  healthyForMs?: Opt<number>;
  previousGeneration?: Opt<number>;
  previousImageVersion?: Opt<number>;
  generations?: Opt<number[]>;
  specHash?: Opt<string>;
  codeLine?: Opt<string>;
  codeVersion?: Opt<number>;
  previousCodeVersion?: Opt<number>;
}

interface InventoryFields<State, Health> {
  images?: Opt<
    Array<{ line?: Opt<string>; version?: Opt<number>; uuid?: Opt<string>; receivedUuid?: Opt<string> }>
  >;
  poolFreeBytes?: Opt<number>;
  poolTotalBytes?: Opt<number>;
  apps?: Opt<Array<AppFields<State, Health>>>;
  reportedAtMs?: Opt<number>;
  facts?: Opt<Record<string, string>>;
}

/** An Inventory of either version as the model; `state` and `health` read an app's two enums. */
export function decodeInventoryWith<State, Health>(
  i: InventoryFields<State, Health>,
  readers: {
    state: (state: State | undefined) => AppInstance["state"];
    health: (health: Health | undefined) => AppInstance["health"];
  },
): Inventory {
  return {
    images: list(i.images).map((c) => ({
      line: str(c.line),
      version: num(c.version),
      uuid: str(c.uuid),
      receivedUuid: str(c.receivedUuid),
    })),
    poolFreeBytes: num(i.poolFreeBytes),
    poolTotalBytes: num(i.poolTotalBytes),
    apps: list(i.apps).map(
      (a): AppInstance => ({
        name: str(a.name),
        generation: num(a.generation),
        imageLine: str(a.imageLine),
        imageVersion: num(a.imageVersion),
        state: readers.state(a.state),
        health: readers.health(a.health),
        healthDetail: str(a.healthDetail),
        healthSinceMs: num(a.healthSinceMs),
        healthyForMs: num(a.healthyForMs),
        previousGeneration: num(a.previousGeneration),
        previousImageVersion: num(a.previousImageVersion),
        generations: list(a.generations).map(Number),
        specHash: str(a.specHash),
        codeLine: str(a.codeLine),
        codeVersion: num(a.codeVersion),
        previousCodeVersion: num(a.previousCodeVersion),
      }),
    ),
    reportedAtMs: num(i.reportedAtMs),
    facts: map(i.facts),
  };
}

interface WelcomeFields {
  protocolVersion?: Opt<number>;
  controllerVersion?: Opt<string>;
  heartbeatIntervalMs?: Opt<number>;
  serverTimeMs?: Opt<number>;
}

/** What the controller sends, of either version, as the model (the envelope's payload is set). */
export function decodeControllerPayload<CommandType, ErrorFields>(
  envelope: {
    payload?: string;
    welcome?: Opt<WelcomeFields>;
    command?: Opt<CommandType>;
    refusal?: Opt<{ error?: Opt<ErrorFields> }>;
  },
  readers: { command: (c: CommandType) => Command; error: (e: ErrorFields) => WireError },
): ControllerMessage {
  switch (envelope.payload) {
    case "welcome": {
      const w = envelope.welcome ?? {};
      return {
        welcome: {
          protocolVersion: num(w.protocolVersion),
          controllerVersion: str(w.controllerVersion),
          heartbeatIntervalMs: num(w.heartbeatIntervalMs),
          serverTimeMs: num(w.serverTimeMs),
        },
      };
    }
    case "command":
      return { command: readers.command(envelope.command as CommandType) };
    case "refusal":
      return {
        refusal: envelope.refusal?.error
          ? readers.error(envelope.refusal.error)
          : { code: "GILD_INTERNAL", message: "refused", hint: "" },
      };
    default:
      throw malformed(`${String(envelope.payload)} is not a message the controller sends`);
  }
}

/** What an agent sends, of either version, as the model (the envelope's payload is set). */
export function decodeAgentPayload<InventoryType, StatusType>(
  envelope: {
    payload?: string;
    hello?: Opt<Parameters<typeof decodeHello>[0]>;
    inventory?: Opt<InventoryType>;
    commandStatus?: Opt<StatusType>;
    heartbeat?: Opt<{ sentAtMs?: Opt<number> }>;
  },
  readers: { inventory: (i: InventoryType) => Inventory; commandStatus: (s: StatusType) => CommandStatus },
): AgentMessage {
  switch (envelope.payload) {
    case "hello":
      return { hello: decodeHello(envelope.hello ?? {}) };
    case "inventory":
      return { inventory: readers.inventory(envelope.inventory as InventoryType) };
    case "commandStatus":
      return { commandStatus: readers.commandStatus(envelope.commandStatus as StatusType) };
    case "heartbeat":
      return { heartbeat: { sentAtMs: num(envelope.heartbeat?.sentAtMs) } };
    default:
      throw malformed(`${String(envelope.payload)} is not a message agents send`);
  }
}
