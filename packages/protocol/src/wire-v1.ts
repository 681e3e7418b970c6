import { GildError, type HealthSpec } from "@gild/core";
import { gild } from "./gen/agent.js";
import type {
  AgentMessage,
  AppHealth,
  AppState,
  Command,
  CommandState,
  CommandStatus,
  ControllerMessage,
  PullResult,
  TransferPhase,
  TransferProgress,
  WireError,
} from "./model.js";
import { APP_HEALTHS, APP_STATES } from "./model.js";
import { invert, list, lookup, malformed, num, str } from "./wire-fields.js";
import {
  decodeAgentPayload,
  decodeCommandWith,
  decodeControllerPayload,
  decodeInventoryWith,
  decodeStatusWith,
} from "./wire-shared.js";

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

function encodeCommand(c: Command): gild.v1.Command.$Properties {
  if ("runHostCommand" in c || "rebootHost" in c) {
    // Protocol 1 has no host maintenance: a v1 agent would answer "unknown command" at best.
    const kind = "runHostCommand" in c ? "runHostCommand" : "rebootHost";
    throw new GildError("GILD_PROTO_VERSION", `protocol 1 cannot carry ${kind} (command ${c.commandId})`, {
      hint: "upgrade the host's agent to this gild version; host updates need protocol 2",
    });
  }
  const out: gild.v1.Command.$Properties = { commandId: c.commandId, deadlineMs: 0 };
  // Protocol 1 has no peer sources: its agents fetch from the controller, as they always did.
  if ("pullImage" in c) out.pullImage = { manifest: c.pullImage.manifest, signature: c.pullImage.signature };
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
export function commandFromV1(c: gild.v1.Command.$Properties): Command {
  return decodeCommandWith(c, {
    health: decodeHealth,
    readLogs: (r: gild.v1.ReadLogs.$Properties) => {
      const offset = num(r.offset);
      return offset < 0 ? { tailBytes: -offset } : { offset };
    },
  });
}

function decodeProgress(p: gild.v1.TransferProgress.$Properties): TransferProgress {
  return {
    bytesDone: num(p.bytesDone),
    bytesTotal: num(p.bytesTotal),
    rateBytesPerSecond: num(p.rateBytesPerSecond),
    phase: oneOf(PHASES, p.phase || "download", "transfer phase"),
  };
}

function encodeStatus(s: CommandStatus): gild.v1.CommandStatus.$Properties {
  return {
    commandId: s.commandId,
    state: lookup(COMMAND_STATE, s.state, "command state"),
    progress: s.progress,
    error: s.error ? encodeError(s.error) : null,
    replayed: s.replayed,
    ...(s.pull ? { pull: pullResultV1(s.pull) } : {}),
    ...(s.deploy ? { deploy: s.deploy } : {}),
    ...(s.logs ? { logs: s.logs } : {}),
  };
}

/** A PullResult without what protocol 1 cannot carry (peer reports). */
function pullResultV1(p: PullResult): gild.v1.PullResult.$Properties {
  return {
    uuid: p.uuid,
    receivedUuid: p.receivedUuid,
    bytesTransferred: p.bytesTransferred,
    alreadyPresent: p.alreadyPresent,
    resumedFrom: p.resumedFrom,
  };
}

/** A protocol-1 CommandStatus as the model (also what agents journaled before protocol 2). */
export function commandStatusFromV1(s: gild.v1.CommandStatus.$Properties): CommandStatus {
  return decodeStatusWith(s, {
    state: (state) => lookup(COMMAND_STATE_OF, num(state), "command state"),
    progress: decodeProgress,
    error: decodeError,
  });
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
  return decodeAgentPayload(envelope, {
    inventory: (i: gild.v1.Inventory.$Properties) =>
      decodeInventoryWith(i, {
        state: (state) => oneOf<AppState>(APP_STATES, state, "app state"),
        health: (health) => oneOf<AppHealth>(APP_HEALTHS, health || "unknown", "app health"),
      }),
    commandStatus: commandStatusFromV1,
  });
}

export function encodeControllerMessageV1(message: ControllerMessage, seq: number): Uint8Array {
  const envelope: gild.v1.Envelope.$Properties = { seq };
  if ("welcome" in message) envelope.welcome = message.welcome;
  else if ("command" in message) envelope.command = encodeCommand(message.command);
  else envelope.refusal = { error: encodeError(message.refusal) };
  return v1.Envelope.encode(envelope).finish();
}

export function controllerMessageFromV1(envelope: gild.v1.Envelope): ControllerMessage {
  return decodeControllerPayload(envelope, { command: commandFromV1, error: decodeError });
}
