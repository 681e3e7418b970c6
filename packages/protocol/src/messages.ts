import { gild } from "./gen/agent.js";

// The generated classes, under the names the rest of gild uses. Message types are the generated
// `$Properties` shapes: plain objects, so code builds them as literals.
export const pb = gild.v1;

export type Envelope = gild.v1.Envelope.$Properties;
export type EnvelopePayloadKind = NonNullable<gild.v1.Envelope["payload"]>;
export type Hello = gild.v1.Hello.$Properties;
export type Welcome = gild.v1.Welcome.$Properties;
export type Refusal = gild.v1.Refusal.$Properties;
export type Inventory = gild.v1.Inventory.$Properties;
export type ImageCopy = gild.v1.ImageCopy.$Properties;
export type AppInstance = gild.v1.AppInstance.$Properties;
export type Command = gild.v1.Command.$Properties;
export type CommandKind = NonNullable<gild.v1.Command["kind"]>;
export type CommandStatus = gild.v1.CommandStatus.$Properties;

// Keyed by kind, so the compiler refuses this list when the schema gains or loses a command.
const COMMAND_KIND_KEYS: Record<CommandKind, true> = {
  pullImage: true,
  removeImage: true,
  deployApp: true,
  rollbackApp: true,
  removeApp: true,
  readLogs: true,
};

/** Every kind of Command. */
export const COMMAND_KINDS = Object.freeze(Object.keys(COMMAND_KIND_KEYS) as CommandKind[]);

/** The kind a command carries; undefined when it carries none this build knows, or more than one. */
export function commandKindOf(command: Pick<Command, CommandKind>): CommandKind | undefined {
  const present = COMMAND_KINDS.filter((k) => command[k] !== undefined && command[k] !== null);
  return present.length === 1 ? present[0] : undefined;
}
export type ArtifactManifest = gild.v1.ArtifactManifest.$Properties;
export type PullImage = gild.v1.PullImage.$Properties;
export type PullResult = gild.v1.PullResult.$Properties;
export type TransferProgress = gild.v1.TransferProgress.$Properties;
export type TransferHeader = gild.v1.TransferHeader.$Properties;
export type RemoveImage = gild.v1.RemoveImage.$Properties;
export type AppSpecMessage = gild.v1.AppSpec.$Properties;
export type DeployApp = gild.v1.DeployApp.$Properties;
export type RollbackApp = gild.v1.RollbackApp.$Properties;
export type RemoveApp = gild.v1.RemoveApp.$Properties;
export type DeployResult = gild.v1.DeployResult.$Properties;
export type ReadLogs = gild.v1.ReadLogs.$Properties;
export type LogChunk = gild.v1.LogChunk.$Properties;

export const CommandState = gild.v1.CommandStatus.State;
export type CommandState = gild.v1.CommandStatus.State;
