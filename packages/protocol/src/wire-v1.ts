import type { HealthSpec } from "@gild/core";
import { gild } from "./gen/agent.js";
import type {
  AgentMessage,
  AppHealth,
  AppInstance,
  AppSpecMessage,
  AppState,
  Command,
  CommandState,
  CommandStatus,
  ControllerMessage,
  DeployResult,
  Inventory,
  TransferPhase,
  TransferProgress,
  WireError,
} from "./model.js";
import { APP_HEALTHS, APP_STATES, commandKindOf } from "./model.js";
import { bool, bytes, invert, list, lookup, malformed, map, num, str } from "./wire-fields.js";
import { decodeHello } from "./wire-v2.js";

// Protocol 1 <-> the model (model.ts), for agents of the version before: strings where protocol 2
// has enums, a health probe's kind and target as plain fields, a negative log offset for "from the
// end". What protocol 1 cannot express is not sent (the controller decides what a v1 agent gets).

const v1 = gild.v1;

const COMMAND_STATE = new Map<CommandState, number>([
  ["running", v1.CommandStatus.State.STATE_RUNNING],
  ["succeeded", v1.CommandStatus.State.STATE_SUCCEEDED],
  ["failed", v1.CommandStatus.State.STATE_FAILED],
]);
const COMMAND_STATE_OF = invert(COMMAND_STATE);
const PHASES: readonly TransferPhase[] = ["download", "receive"];

function oneOf<T extends string>(values: readonly T[], value: string | null | undefined, what: string): T {
  const found = values.find((v) => v === value);
  if (found === undefined) throw malformed(`${what} "${String(value)}" is not known`);
  return found;
}

const encodeError = (e: WireError): gild.v1.Error.$Properties => ({ ...e });
const decodeError = (e: gild.v1.Error.$Properties): WireError => ({
  code: str(e.code) || "GILD_INTERNAL",
  message: str(e.message),
  hint: str(e.hint),
});

function encodeHealth(h: HealthSpec | null): gild.v1.HealthProbe.$Properties | null {
  return h === null ? null : { ...h };
}

function decodeHealth(h: gild.v1.HealthProbe.$Properties | null | undefined): HealthSpec | null {
  if (!h) return null;
  return {
    kind: oneOf(["http", "tcp", "exec"] as const, h.kind || "http", "health probe kind"),
    target: str(h.target),
    command: list(h.command),
    intervalMs: num(h.intervalMs),
    timeoutMs: num(h.timeoutMs),
    initialDelayMs: num(h.initialDelayMs),
    minHealthyMs: num(h.minHealthyMs),
  };
}

function decodeSpec(s: gild.v1.AppSpec.$Properties | null | undefined): AppSpecMessage {
  if (!s) throw malformed("DeployApp without a spec");
  return {
    name: str(s.name),
    imageLine: str(s.imageLine),
    command: list(s.command),
    env: map(s.env),
    dataMount: str(s.dataMount),
    health: decodeHealth(s.health),
    stopTimeoutMs: num(s.stopTimeoutMs),
    port: num(s.port),
  };
}

function encodeCommand(c: Command): gild.v1.Command.$Properties {
  const out: gild.v1.Command.$Properties = { commandId: c.commandId, deadlineMs: 0 };
  if ("pullImage" in c) out.pullImage = c.pullImage;
  else if ("removeImage" in c) out.removeImage = c.removeImage;
  else if ("deployApp" in c) {
    const d = c.deployApp;
    out.deployApp = { ...d, spec: { ...d.spec, health: encodeHealth(d.spec.health) } };
  } else if ("rollbackApp" in c) out.rollbackApp = c.rollbackApp;
  else if ("removeApp" in c) out.removeApp = c.removeApp;
  else {
    const r = c.readLogs;
    out.readLogs = {
      name: r.name,
      generation: r.generation,
      maxBytes: r.maxBytes,
      offset: "offset" in r.from ? r.from.offset : -r.from.tailBytes,
    };
  }
  return out;
}

/** A protocol-1 Command as the model. */
export function commandFromV1(c: gild.v1.Command): Command {
  const commandId = str(c.commandId);
  switch (commandKindOf(c)) {
    case "pullImage": {
      const p = c.pullImage as gild.v1.PullImage.$Properties;
      return { commandId, pullImage: { manifest: bytes(p.manifest), signature: bytes(p.signature) } };
    }
    case "removeImage": {
      const r = c.removeImage as gild.v1.RemoveImage.$Properties;
      return { commandId, removeImage: { line: str(r.line), version: num(r.version) } };
    }
    case "deployApp": {
      const d = c.deployApp as gild.v1.DeployApp.$Properties;
      return {
        commandId,
        deployApp: {
          spec: decodeSpec(d.spec),
          imageVersion: num(d.imageVersion),
          healthyDeadlineMs: num(d.healthyDeadlineMs),
          specHash: str(d.specHash),
        },
      };
    }
    case "rollbackApp": {
      const r = c.rollbackApp as gild.v1.RollbackApp.$Properties;
      return {
        commandId,
        rollbackApp: {
          name: str(r.name),
          healthyDeadlineMs: num(r.healthyDeadlineMs),
          onlyFromImageVersion: num(r.onlyFromImageVersion),
        },
      };
    }
    case "removeApp": {
      const r = c.removeApp as gild.v1.RemoveApp.$Properties;
      return { commandId, removeApp: { name: str(r.name), purgeData: bool(r.purgeData) } };
    }
    case "readLogs": {
      const r = c.readLogs as gild.v1.ReadLogs.$Properties;
      const offset = num(r.offset);
      return {
        commandId,
        readLogs: {
          name: str(r.name),
          generation: num(r.generation),
          from: offset < 0 ? { tailBytes: -offset } : { offset },
          maxBytes: num(r.maxBytes),
        },
      };
    }
    default:
      return { commandId } as Command;
  }
}

function decodeProgress(p: gild.v1.TransferProgress.$Properties | null | undefined): TransferProgress | null {
  if (!p) return null;
  return {
    bytesDone: num(p.bytesDone),
    bytesTotal: num(p.bytesTotal),
    rateBytesPerSecond: num(p.rateBytesPerSecond),
    phase: oneOf(PHASES, p.phase || "download", "transfer phase"),
  };
}

function decodeDeployResult(d: gild.v1.DeployResult.$Properties): DeployResult {
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
  };
}

function encodeStatus(s: CommandStatus): gild.v1.CommandStatus.$Properties {
  return {
    commandId: s.commandId,
    state: lookup(COMMAND_STATE, s.state, "command state"),
    progress: s.progress,
    error: s.error ? encodeError(s.error) : null,
    replayed: s.replayed,
    ...(s.pull ? { pull: s.pull } : {}),
    ...(s.deploy ? { deploy: s.deploy } : {}),
    ...(s.logs ? { logs: s.logs } : {}),
  };
}

/** A protocol-1 CommandStatus as the model (also what agents journaled before protocol 2). */
export function commandStatusFromV1(s: gild.v1.CommandStatus.$Properties): CommandStatus {
  const out: CommandStatus = {
    commandId: str(s.commandId),
    state: lookup(COMMAND_STATE_OF, num(s.state), "command state"),
    progress: decodeProgress(s.progress),
    error: s.error ? decodeError(s.error) : null,
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
  return out;
}

function decodeApp(a: gild.v1.AppInstance.$Properties): AppInstance {
  return {
    name: str(a.name),
    generation: num(a.generation),
    imageLine: str(a.imageLine),
    imageVersion: num(a.imageVersion),
    state: oneOf<AppState>(APP_STATES, a.state, "app state"),
    health: oneOf<AppHealth>(APP_HEALTHS, a.health || "unknown", "app health"),
    healthDetail: str(a.healthDetail),
    healthSinceMs: num(a.healthSinceMs),
    healthyForMs: num(a.healthyForMs),
    previousGeneration: num(a.previousGeneration),
    previousImageVersion: num(a.previousImageVersion),
    generations: list(a.generations).map(Number),
    specHash: str(a.specHash),
  };
}

function decodeInventory(i: gild.v1.Inventory.$Properties): Inventory {
  return {
    images: list(i.images).map((c) => ({
      line: str(c.line),
      version: num(c.version),
      uuid: str(c.uuid),
      receivedUuid: str(c.receivedUuid),
    })),
    poolFreeBytes: num(i.poolFreeBytes),
    poolTotalBytes: num(i.poolTotalBytes),
    apps: list(i.apps).map(decodeApp),
    reportedAtMs: num(i.reportedAtMs),
  };
}

export function encodeAgentMessageV1(message: AgentMessage, seq: number): Uint8Array {
  const envelope: gild.v1.Envelope.$Properties = { seq };
  if ("hello" in message) envelope.hello = message.hello;
  else if ("inventory" in message) envelope.inventory = message.inventory;
  else if ("commandStatus" in message) envelope.commandStatus = encodeStatus(message.commandStatus);
  else envelope.heartbeat = message.heartbeat;
  return v1.Envelope.encode(envelope).finish();
}

export function agentMessageFromV1(envelope: gild.v1.Envelope): AgentMessage {
  switch (envelope.payload) {
    case "hello":
      return { hello: decodeHello(envelope.hello as gild.v2.Hello.$Properties) };
    case "inventory":
      return { inventory: decodeInventory(envelope.inventory as gild.v1.Inventory.$Properties) };
    case "commandStatus":
      return {
        commandStatus: commandStatusFromV1(envelope.commandStatus as gild.v1.CommandStatus.$Properties),
      };
    case "heartbeat":
      return { heartbeat: { sentAtMs: num(envelope.heartbeat?.sentAtMs) } };
    default:
      throw malformed(`${String(envelope.payload)} is not a message agents send`);
  }
}

export function encodeControllerMessageV1(message: ControllerMessage, seq: number): Uint8Array {
  const envelope: gild.v1.Envelope.$Properties = { seq };
  if ("welcome" in message) envelope.welcome = message.welcome;
  else if ("command" in message) envelope.command = encodeCommand(message.command);
  else envelope.refusal = { error: encodeError(message.refusal) };
  return v1.Envelope.encode(envelope).finish();
}

export function controllerMessageFromV1(envelope: gild.v1.Envelope): ControllerMessage {
  switch (envelope.payload) {
    case "welcome": {
      const w = envelope.welcome as gild.v1.Welcome.$Properties;
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
      return { command: commandFromV1(envelope.command as gild.v1.Command) };
    case "refusal":
      return {
        refusal: envelope.refusal?.error
          ? decodeError(envelope.refusal.error)
          : { code: "GILD_INTERNAL", message: "refused", hint: "" },
      };
    default:
      throw malformed(`${String(envelope.payload)} is not a message the controller sends`);
  }
}
