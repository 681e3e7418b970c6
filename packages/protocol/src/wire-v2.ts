import type { HealthSpec } from "@gild/core";
import { gild } from "./gen/agent.js";
import type {
  AgentMessage,
  AppHealth,
  AppInstance,
  AppState,
  Command,
  CommandState,
  CommandStatus,
  ControllerMessage,
  TransferPhase,
  TransferProgress,
  WireError,
} from "./model.js";
import { invert, list, lookup, malformed, num, str } from "./wire-fields.js";
import {
  decodeAgentPayload,
  decodeCommandWith,
  decodeControllerPayload,
  decodeInventoryWith,
  decodeStatusWith,
} from "./wire-shared.js";

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

function encodeCommand(c: Command): gild.v2.Command.$Properties {
  const out: gild.v2.Command.$Properties = { commandId: c.commandId };
  if ("pullImage" in c) out.pullImage = c.pullImage;
  else if ("removeImage" in c) out.removeImage = c.removeImage;
  else if ("deployApp" in c) {
    const d = c.deployApp;
    out.deployApp = { ...d, spec: { ...d.spec, health: encodeHealth(d.spec.health) } };
  } else if ("rollbackApp" in c) out.rollbackApp = c.rollbackApp;
  else if ("removeApp" in c) out.removeApp = c.removeApp;
  else if ("runHostCommand" in c) out.runHostCommand = c.runHostCommand;
  else if ("rebootHost" in c) out.rebootHost = {};
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

function decodeCommand(c: gild.v2.Command.$Properties): Command {
  return decodeCommandWith(c, {
    health: decodeHealth,
    // A decoded ReadLogs says which member of its oneof is set (`from`).
    readLogs: (r: gild.v2.ReadLogs.$Properties) =>
      (r as gild.v2.ReadLogs).from === "tailBytes"
        ? { tailBytes: num(r.tailBytes) }
        : { offset: num(r.offset) },
  });
}

function encodeProgress(p: TransferProgress): gild.v2.TransferProgress.$Properties {
  return { ...p, phase: lookup(PHASE, p.phase, "transfer phase") };
}

function decodeProgress(p: gild.v2.TransferProgress.$Properties): TransferProgress {
  return {
    bytesDone: num(p.bytesDone),
    bytesTotal: num(p.bytesTotal),
    rateBytesPerSecond: num(p.rateBytesPerSecond),
    phase: lookup(PHASE_OF, num(p.phase), "transfer phase"),
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
    ...(s.hostCommand ? { hostCommand: s.hostCommand } : {}),
  };
}

function decodeStatus(s: gild.v2.CommandStatus.$Properties): CommandStatus {
  return decodeStatusWith(s, {
    state: (state) => lookup(COMMAND_STATE_OF, num(state), "command state"),
    progress: decodeProgress,
    error: decodeError,
  });
}

function encodeApp(a: AppInstance): gild.v2.AppInstance.$Properties {
  return {
    ...a,
    state: lookup(APP_STATE, a.state, "app state"),
    health: lookup(HEALTH, a.health, "app health"),
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
  return decodeAgentPayload(envelope, {
    inventory: (i: gild.v2.Inventory.$Properties) =>
      decodeInventoryWith(i, {
        state: (state) => lookup(APP_STATE_OF, num(state), "app state"),
        health: (health) => lookup(HEALTH_OF, num(health), "app health"),
      }),
    commandStatus: decodeStatus,
  });
}

export function encodeControllerMessageV2(message: ControllerMessage, seq: number): Uint8Array {
  const envelope: gild.v2.Envelope.$Properties = { seq };
  if ("welcome" in message) envelope.welcome = message.welcome;
  else if ("command" in message) envelope.command = encodeCommand(message.command);
  else envelope.refusal = { error: encodeError(message.refusal) };
  return v2.Envelope.encode(envelope).finish();
}

export function controllerMessageFromV2(envelope: gild.v2.Envelope): ControllerMessage {
  return decodeControllerPayload(envelope, { command: decodeCommand, error: decodeError });
}
