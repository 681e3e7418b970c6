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
  Hello,
  Inventory,
  TransferPhase,
  TransferProgress,
  WireError,
} from "./model.js";
import { commandKindOf } from "./model.js";
import { bool, bytes, invert, list, lookup, malformed, map, num, str } from "./wire-fields.js";

// Protocol 2 <-> the model (model.ts). Enums on the wire, string unions in the model.

const v2 = gild.v2;

const APP_STATE = new Map<AppState, number>([
  ["running", v2.AppState.APP_STATE_RUNNING],
  ["stopped", v2.AppState.APP_STATE_STOPPED],
  ["switching", v2.AppState.APP_STATE_SWITCHING],
  ["rollback-failed", v2.AppState.APP_STATE_ROLLBACK_FAILED],
]);
const HEALTH = new Map<AppHealth, number>([
  ["healthy", v2.Health.HEALTH_HEALTHY],
  ["unhealthy", v2.Health.HEALTH_UNHEALTHY],
  ["unknown", v2.Health.HEALTH_UNKNOWN],
]);
const PHASE = new Map<TransferPhase, number>([
  ["download", v2.TransferPhase.TRANSFER_PHASE_DOWNLOAD],
  ["receive", v2.TransferPhase.TRANSFER_PHASE_RECEIVE],
]);
const COMMAND_STATE = new Map<CommandState, number>([
  ["running", v2.CommandState.COMMAND_STATE_RUNNING],
  ["succeeded", v2.CommandState.COMMAND_STATE_SUCCEEDED],
  ["failed", v2.CommandState.COMMAND_STATE_FAILED],
]);
const APP_STATE_OF = invert(APP_STATE);
const HEALTH_OF = invert(HEALTH);
const PHASE_OF = invert(PHASE);
const COMMAND_STATE_OF = invert(COMMAND_STATE);

/** GILD_<NAME> <-> ERROR_CODE_<NAME>, from the generated enum (a test keeps it equal to core's table). */
export const ERROR_CODE_NUMBERS: ReadonlyMap<string, number> = new Map(
  Object.entries(v2.ErrorCode)
    .filter(([name, n]) => typeof n === "number" && n > 0 && name.startsWith("ERROR_CODE_"))
    .map(([name, n]) => [`GILD_${name.slice("ERROR_CODE_".length)}`, n as number]),
);
const ERROR_CODE_NAMES = invert(ERROR_CODE_NUMBERS);

function encodeError(error: WireError): gild.v2.Error.$Properties {
  const code = ERROR_CODE_NUMBERS.get(error.code);
  // A code this side has no number for (none: a test checks) travels as INTERNAL, its name kept.
  return code === undefined
    ? { code: v2.ErrorCode.ERROR_CODE_INTERNAL, message: `${error.code}: ${error.message}`, hint: error.hint }
    : { code, message: error.message, hint: error.hint };
}

function decodeError(error: gild.v2.Error.$Properties): WireError {
  const n = num(error.code);
  const code = ERROR_CODE_NAMES.get(n);
  return code === undefined
    ? { code: "GILD_INTERNAL", message: `error code ${n}: ${str(error.message)}`, hint: str(error.hint) }
    : { code, message: str(error.message), hint: str(error.hint) };
}

function encodeHealth(h: HealthSpec | null): gild.v2.HealthProbe.$Properties | null {
  if (h === null) return null;
  const timing = {
    intervalMs: h.intervalMs,
    timeoutMs: h.timeoutMs,
    initialDelayMs: h.initialDelayMs,
    minHealthyMs: h.minHealthyMs,
  };
  if (h.kind === "http") return { http: { url: h.target }, ...timing };
  if (h.kind === "tcp") return { tcp: { address: h.target }, ...timing };
  return { exec: { command: h.command }, ...timing };
}

function decodeHealth(h: gild.v2.HealthProbe.$Properties | null | undefined): HealthSpec | null {
  if (!h) return null;
  const timing = {
    intervalMs: num(h.intervalMs),
    timeoutMs: num(h.timeoutMs),
    initialDelayMs: num(h.initialDelayMs),
    minHealthyMs: num(h.minHealthyMs),
  };
  if (h.http) return { kind: "http", target: str(h.http.url), command: [], ...timing };
  if (h.tcp) return { kind: "tcp", target: str(h.tcp.address), command: [], ...timing };
  if (h.exec) return { kind: "exec", target: "", command: list(h.exec.command), ...timing };
  throw malformed("a health probe with no check");
}

function decodeSpec(s: gild.v2.AppSpec.$Properties | null | undefined): AppSpecMessage {
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

function encodeCommand(c: Command): gild.v2.Command.$Properties {
  const out: gild.v2.Command.$Properties = { commandId: c.commandId };
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
      ...("offset" in r.from ? { offset: r.from.offset } : { tailBytes: r.from.tailBytes }),
    };
  }
  return out;
}

function decodeCommand(c: gild.v2.Command): Command {
  const commandId = str(c.commandId);
  switch (commandKindOf(c)) {
    case "pullImage": {
      const p = c.pullImage as gild.v2.PullImage.$Properties;
      return { commandId, pullImage: { manifest: bytes(p.manifest), signature: bytes(p.signature) } };
    }
    case "removeImage": {
      const r = c.removeImage as gild.v2.RemoveImage.$Properties;
      return { commandId, removeImage: { line: str(r.line), version: num(r.version) } };
    }
    case "deployApp": {
      const d = c.deployApp as gild.v2.DeployApp.$Properties;
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
      const r = c.rollbackApp as gild.v2.RollbackApp.$Properties;
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
      const r = c.removeApp as gild.v2.RemoveApp.$Properties;
      return { commandId, removeApp: { name: str(r.name), purgeData: bool(r.purgeData) } };
    }
    case "readLogs": {
      const r = c.readLogs as gild.v2.ReadLogs;
      const from = r.from === "tailBytes" ? { tailBytes: num(r.tailBytes) } : { offset: num(r.offset) };
      return {
        commandId,
        readLogs: { name: str(r.name), generation: num(r.generation), from, maxBytes: num(r.maxBytes) },
      };
    }
    default:
      // An empty command (a kind of a newer version): its id still gets an answer (unknown kind).
      return { commandId } as Command;
  }
}

function encodeProgress(p: TransferProgress): gild.v2.TransferProgress.$Properties {
  return { ...p, phase: lookup(PHASE, p.phase, "transfer phase") };
}

function decodeProgress(p: gild.v2.TransferProgress.$Properties | null | undefined): TransferProgress | null {
  if (!p) return null;
  return {
    bytesDone: num(p.bytesDone),
    bytesTotal: num(p.bytesTotal),
    rateBytesPerSecond: num(p.rateBytesPerSecond),
    phase: lookup(PHASE_OF, num(p.phase), "transfer phase"),
  };
}

export function decodeDeployResultV2(d: gild.v2.DeployResult.$Properties): DeployResult {
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

function encodeStatus(s: CommandStatus): gild.v2.CommandStatus.$Properties {
  return {
    commandId: s.commandId,
    state: lookup(COMMAND_STATE, s.state, "command state"),
    progress: s.progress ? encodeProgress(s.progress) : null,
    error: s.error ? encodeError(s.error) : null,
    replayed: s.replayed,
    ...(s.pull ? { pull: s.pull } : {}),
    ...(s.deploy ? { deploy: s.deploy } : {}),
    ...(s.logs ? { logs: s.logs } : {}),
  };
}

function decodeStatus(s: gild.v2.CommandStatus.$Properties): CommandStatus {
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
  if (s.deploy) out.deploy = decodeDeployResultV2(s.deploy);
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

function encodeApp(a: AppInstance): gild.v2.AppInstance.$Properties {
  return {
    ...a,
    state: lookup(APP_STATE, a.state, "app state"),
    health: lookup(HEALTH, a.health, "app health"),
  };
}

function decodeApp(a: gild.v2.AppInstance.$Properties): AppInstance {
  return {
    name: str(a.name),
    generation: num(a.generation),
    imageLine: str(a.imageLine),
    imageVersion: num(a.imageVersion),
    state: lookup(APP_STATE_OF, num(a.state), "app state"),
    health: lookup(HEALTH_OF, num(a.health), "app health"),
    healthDetail: str(a.healthDetail),
    healthSinceMs: num(a.healthSinceMs),
    healthyForMs: num(a.healthyForMs),
    previousGeneration: num(a.previousGeneration),
    previousImageVersion: num(a.previousImageVersion),
    generations: list(a.generations).map(Number),
    specHash: str(a.specHash),
  };
}

function decodeInventory(i: gild.v2.Inventory.$Properties): Inventory {
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

/** Hello is the same in every version: decoded here whatever the agent speaks. */
export function decodeHello(h: gild.v2.Hello.$Properties): Hello {
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

export function encodeAgentMessageV2(message: AgentMessage, seq: number): Uint8Array {
  const envelope: gild.v2.Envelope.$Properties = { seq };
  if ("hello" in message) envelope.hello = message.hello;
  else if ("inventory" in message)
    envelope.inventory = { ...message.inventory, apps: message.inventory.apps.map(encodeApp) };
  else if ("commandStatus" in message) envelope.commandStatus = encodeStatus(message.commandStatus);
  else envelope.heartbeat = message.heartbeat;
  return v2.Envelope.encode(envelope).finish();
}

/** A decoded envelope's payload as the model; the payload kind is known to be set. */
export function agentMessageFromV2(envelope: gild.v2.Envelope): AgentMessage {
  switch (envelope.payload) {
    case "hello":
      return { hello: decodeHello(envelope.hello as gild.v2.Hello.$Properties) };
    case "inventory":
      return { inventory: decodeInventory(envelope.inventory as gild.v2.Inventory.$Properties) };
    case "commandStatus":
      return { commandStatus: decodeStatus(envelope.commandStatus as gild.v2.CommandStatus.$Properties) };
    case "heartbeat":
      return { heartbeat: { sentAtMs: num(envelope.heartbeat?.sentAtMs) } };
    default:
      throw malformed(`${String(envelope.payload)} is not a message agents send`);
  }
}

export function encodeControllerMessageV2(message: ControllerMessage, seq: number): Uint8Array {
  const envelope: gild.v2.Envelope.$Properties = { seq };
  if ("welcome" in message) envelope.welcome = message.welcome;
  else if ("command" in message) envelope.command = encodeCommand(message.command);
  else envelope.refusal = { error: encodeError(message.refusal) };
  return v2.Envelope.encode(envelope).finish();
}

export function controllerMessageFromV2(envelope: gild.v2.Envelope): ControllerMessage {
  switch (envelope.payload) {
    case "welcome": {
      const w = envelope.welcome as gild.v2.Welcome.$Properties;
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
      return { command: decodeCommand(envelope.command as gild.v2.Command) };
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
