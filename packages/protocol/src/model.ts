import type { HealthSpec } from "@gild/core";

// What controller and agents say to each other, as the rest of gild handles it: plain objects with
// every field present, states as string unions. The wire forms (protocol 1 and 2, generated code in
// gen/) are met only in wire-v1.ts and wire-v2.ts, which map these both ways.

/** What an app instance is doing on its host. */
export type AppState = "running" | "stopped" | "switching" | "rollback-failed";
export const APP_STATES: readonly AppState[] = ["running", "stopped", "switching", "rollback-failed"];

/** An app's health: `unknown` before the first probe, or while it does not run. */
export type AppHealth = "healthy" | "unhealthy" | "unknown";
export const APP_HEALTHS: readonly AppHealth[] = ["healthy", "unhealthy", "unknown"];

/** What a transfer is doing: downloading the artifact, or `btrfs receive` reading it. */
export type TransferPhase = "download" | "receive";

export type CommandState = "running" | "succeeded" | "failed";

/** An error as it travels: its code (GILD_...), message, and hint ("" for none). */
export interface WireError {
  code: string;
  message: string;
  hint: string;
}

/** The agent's first frame: who it is, and which protocol version it speaks. */
export interface Hello {
  protocolVersion: number;
  hostId: string;
  hostName: string;
  agentVersion: string;
  kernelVersion: string;
  btrfsProgsVersion: string;
  labels: Record<string, string>;
  facts: Record<string, string>;
  /** Highest send-stream protocol `btrfs receive` on the host understands (1 or 2). */
  maxStreamVersion: number;
}

export interface Welcome {
  protocolVersion: number;
  controllerVersion: string;
  heartbeatIntervalMs: number;
  /** The controller's clock, for logs only. */
  serverTimeMs: number;
}

export interface ImageCopy {
  line: string;
  version: number;
  uuid: string;
  /** uuid of the controller's subvolume this copy was received from ("" for a local one). */
  receivedUuid: string;
}

export interface AppInstance {
  name: string;
  generation: number;
  imageLine: string;
  imageVersion: number;
  state: AppState;
  health: AppHealth;
  healthDetail: string;
  /** Start of the health streak on the agent's clock (display only); 0 when unknown. */
  healthSinceMs: number;
  /** How long the healthy streak has lasted when reported, on the agent's monotonic clock. */
  healthyForMs: number;
  /** 0 when none. */
  previousGeneration: number;
  previousImageVersion: number;
  generations: number[];
  specHash: string;
  /** The code line the generation mounts, "" for none; its version and the previous generation's (0: none). */
  codeLine: string;
  codeVersion: number;
  previousCodeVersion: number;
}

export interface Inventory {
  images: ImageCopy[];
  poolFreeBytes: number;
  poolTotalBytes: number;
  apps: AppInstance[];
  reportedAtMs: number;
  /** Facts that change while connected (pending updates, the reboot flag); over the Hello's. {} in protocol 1. */
  facts: Record<string, string>;
}

/** An app as a DeployApp carries it: what runs, not where. */
export interface AppSpecMessage {
  name: string;
  imageLine: string;
  command: string[];
  env: Record<string, string>;
  /** Mount point of data/<app> inside the container; "" for none. */
  dataMount: string;
  /** null: healthy once the container kept running a few seconds. */
  health: HealthSpec | null;
  stopTimeoutMs: number;
  port: number;
  /** The code line mounted read-only at codeMount; "" for an app without code (and codeMount ""). */
  codeLine: string;
  codeMount: string;
}

export interface PullImage {
  /** The manifest exactly as signed (its protobuf encoding), and the ed25519 signature over it. */
  manifest: Uint8Array;
  signature: Uint8Array;
  /** Hosts to fetch verified chunks from, in order; the controller is the last fallback (protocol 2). */
  peerSources?: PeerSource[];
}

/** One host that serves an artifact's chunks to another, with the controller's ticket for it. */
export interface PeerSource {
  hostId: string;
  /** host:port of its peer server. */
  address: string;
  /** A PeerTicket's encoding, and the controller's signature over PEER_TICKET_CONTEXT + it. */
  ticket: Uint8Array;
  ticketSignature: Uint8Array;
  /**
   * The source still pulls the artifact itself in this transfer: its refusal that it holds nothing
   * (GILD_PEER_NOT_HOLDING) means not yet, and the fetcher asks it again for a while.
   */
  downloading?: boolean;
}

/** What lets requesterHostId fetch artifactId's chunks from serverHostId until expiresAtMs. */
export interface PeerTicket {
  requesterHostId: string;
  artifactId: string;
  serverHostId: string;
  expiresAtMs: number;
}

/** A peer that served a chunk whose digest did not match the manifest. */
export interface BadPeer {
  hostId: string;
  reason: string;
}

export interface RemoveImage {
  line: string;
  version: number;
}

export interface DeployApp {
  spec: AppSpecMessage;
  imageVersion: number;
  healthyDeadlineMs: number;
  specHash: string;
  /** The version of spec.codeLine to mount; 0 without code. */
  codeVersion: number;
}

export interface RollbackApp {
  name: string;
  healthyDeadlineMs: number;
  /** 0: roll back whatever runs; else only an app on this version (see the proto). */
  onlyFromImageVersion: number;
  /** The same for a rollout of a code line. */
  onlyFromCodeVersion: number;
}

export interface RemoveApp {
  name: string;
  purgeData: boolean;
}

export interface ReadLogs {
  name: string;
  /** 0 for the current generation. */
  generation: number;
  /** From a byte offset, or the last tailBytes bytes. */
  from: { offset: number } | { tailBytes: number };
  maxBytes: number;
}

/** Run a program on the host itself (the operator's maintenance command). protocol 2 only. */
export interface RunHostCommand {
  /** argv[0] is the program; a shell text comes as ["/bin/sh", "-c", text]. */
  argv: string[];
  /** The agent kills the program after this long, and the command fails. */
  timeoutMs: number;
}

/** Stop every app cleanly, then reboot; the final status comes after the reboot. protocol 2 only. */
export type RebootHost = Record<string, never>;

/** What each kind of command carries. */
export interface CommandPayloads {
  pullImage: PullImage;
  removeImage: RemoveImage;
  deployApp: DeployApp;
  rollbackApp: RollbackApp;
  removeApp: RemoveApp;
  readLogs: ReadLogs;
  runHostCommand: RunHostCommand;
  rebootHost: RebootHost;
}

export type CommandKind = keyof CommandPayloads;

/** A command body: exactly one kind, keyed by its name ({ deployApp: {...} }). */
export type CommandBody = { [K in CommandKind]: { [P in K]: CommandPayloads[K] } }[CommandKind];

export type Command = CommandBody & { commandId: string };

export interface PullResult {
  uuid: string;
  receivedUuid: string;
  bytesTransferred: number;
  /** The image was already present and nothing was fetched. */
  alreadyPresent: boolean;
  /** Byte offset the transfer resumed from (0 for a fresh one). */
  resumedFrom: number;
  /** Peers that served a bad chunk, never used again for this transfer (protocol 2). */
  badPeers?: BadPeer[];
  /** Bytes that came from peers, the rest from the controller (protocol 2). */
  bytesFromPeers?: number;
}

export interface DeployResult {
  name: string;
  generation: number;
  imageVersion: number;
  /** The new generation failed and the previous one was started again. */
  rolledBack: boolean;
  reason: string;
  previousGeneration: number;
  /** With rolledBack: the previous generation did not pass its own health gate either. */
  rollbackUnhealthy: boolean;
  rollbackReason: string;
  /** Nothing was switched. */
  unchanged: boolean;
  codeVersion: number;
}

export interface LogChunk {
  generation: number;
  data: Uint8Array;
  nextOffset: number;
  size: number;
}

/** Most bytes of a host command's output its result carries (the last ones). */
export const MAX_OUTPUT_TAIL_BYTES = 8192;

export interface HostCommandResult {
  /** -1 when the program did not exit by itself (killed at its timeout, or could not start). */
  exitCode: number;
  /** The output's last bytes (stdout and stderr interleaved), at most MAX_OUTPUT_TAIL_BYTES. */
  outputTail: string;
  /** After the command, the host says a reboot is required. */
  rebootRequired: boolean;
}

export interface TransferProgress {
  bytesDone: number;
  bytesTotal: number;
  rateBytesPerSecond: number;
  phase: TransferPhase;
}

/** The result a command's final status carries, by kind (at most one). */
export interface CommandResults {
  pull?: PullResult;
  deploy?: DeployResult;
  logs?: LogChunk;
  hostCommand?: HostCommandResult;
}

export interface CommandStatus extends CommandResults {
  commandId: string;
  state: CommandState;
  progress: TransferProgress | null;
  /** Set when state is failed. */
  error: WireError | null;
  /** The journaled answer to a repeated id, or a result sent again after a reconnect. */
  replayed: boolean;
}

/** What an agent sends: exactly one of these per frame. */
export type AgentMessage =
  | { hello: Hello }
  | { inventory: Inventory }
  | { commandStatus: CommandStatus }
  | { heartbeat: { sentAtMs: number } };

/** What the controller sends. */
export type ControllerMessage = { welcome: Welcome } | { command: Command } | { refusal: WireError };

// Keyed by kind, so the compiler refuses this list when the model gains or loses a command.
const COMMAND_KIND_KEYS: Record<CommandKind, true> = {
  pullImage: true,
  removeImage: true,
  deployApp: true,
  rollbackApp: true,
  removeApp: true,
  readLogs: true,
  runHostCommand: true,
  rebootHost: true,
};

/** Every kind of Command. */
export const COMMAND_KINDS = Object.freeze(Object.keys(COMMAND_KIND_KEYS) as CommandKind[]);

/** The kind a command carries; undefined when it carries none this build knows, or more than one. */
export function commandKindOf(command: Partial<Record<CommandKind, unknown>>): CommandKind | undefined {
  const present = COMMAND_KINDS.filter((k) => command[k] !== undefined && command[k] !== null);
  return present.length === 1 ? present[0] : undefined;
}

/** The payload of a command's kind. */
export function commandPayload<K extends CommandKind>(command: CommandBody, kind: K): CommandPayloads[K] {
  return (command as Partial<CommandPayloads>)[kind] as CommandPayloads[K];
}

/** A deploy result with nothing switched and nothing to say, to fill in. */
export function emptyDeployResult(name: string): DeployResult {
  return {
    name,
    generation: 0,
    imageVersion: 0,
    rolledBack: false,
    reason: "",
    previousGeneration: 0,
    rollbackUnhealthy: false,
    rollbackReason: "",
    unchanged: false,
    codeVersion: 0,
  };
}
