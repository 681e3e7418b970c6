import { randomUUID } from "node:crypto";
import {
  type AppInstance,
  type Command,
  type CommandKind,
  type CommandStatus,
  decodeManifest,
  emptyDeployResult,
  type ImageCopy,
} from "@gild/protocol";

/** A status with nothing but its id and state. */
const status = (commandId: string, state: CommandStatus["state"]): CommandStatus => ({
  commandId,
  state,
  progress: null,
  error: null,
  replayed: false,
});

/** What a fake host holds that a command changes: its images and its one app. */
export interface FakeHostState {
  images: ImageCopy[];
  app: AppInstance;
}

/** The outcome of one simulated command: the final status, and what it changed on the host. */
export interface FakeCommandOutcome {
  status: CommandStatus;
  /** The inventory differs: the host reports it again after the status. */
  changed: boolean;
  deployed: boolean;
  /** A deploy of an image the host does not hold (the controller switched before the pull ended). */
  deployWithoutImage: boolean;
}

/**
 * Run a command the way a real agent's pool and apps would answer it, on the host's state (changed in
 * place): a pull adds the image, a deploy switches the app to a new generation (refused when the image
 * is missing), a rollback returns to the previous generation. Other kinds succeed and change nothing.
 */
export function runFakeCommand(host: FakeHostState, kind: CommandKind, command: Command): FakeCommandOutcome {
  const id = command.commandId;
  const outcome: FakeCommandOutcome = {
    status: status(id, "succeeded"),
    changed: false,
    deployed: false,
    deployWithoutImage: false,
  };
  if (kind === "pullImage" && "pullImage" in command) {
    const manifest = decodeManifest(command.pullImage.manifest);
    const present = host.images.some((i) => i.receivedUuid === manifest.uuid);
    if (!present) {
      host.images = [
        ...host.images,
        {
          line: manifest.line ?? "",
          version: manifest.version ?? 0,
          uuid: randomUUID(),
          receivedUuid: manifest.uuid ?? "",
        },
      ];
      outcome.changed = true;
    }
    outcome.status.pull = {
      uuid: host.images.at(-1)?.uuid ?? "",
      receivedUuid: manifest.uuid ?? "",
      bytesTransferred: present ? 0 : Number(manifest.sizeBytes ?? 0),
      alreadyPresent: present,
      resumedFrom: 0,
    };
  } else if (kind === "deployApp" && "deployApp" in command) {
    const deploy = command.deployApp;
    const version = deploy.imageVersion;
    const app = host.app;
    if (!host.images.some((i) => i.line === app.imageLine && i.version === version)) {
      outcome.deployWithoutImage = true;
      outcome.status = {
        ...status(id, "failed"),
        error: {
          code: "GILD_IMAGE_NOT_FOUND",
          message: `image ${app.imageLine}@${version} is not on this host`,
          hint: "",
        },
      };
      return outcome;
    }
    const generation = Math.max(0, ...app.generations) + 1;
    const previous = app.generation;
    host.app = {
      ...app,
      generation,
      imageVersion: version,
      state: "running",
      health: "healthy",
      healthDetail: "running (no probe)",
      healthSinceMs: Date.now(),
      healthyForMs: 0,
      previousGeneration: previous,
      previousImageVersion: app.imageVersion,
      generations: [previous, generation],
      specHash: deploy.specHash,
    };
    outcome.status.deploy = {
      ...emptyDeployResult(app.name),
      generation,
      imageVersion: version,
      previousGeneration: previous,
    };
    outcome.changed = true;
    outcome.deployed = true;
  } else if (kind === "rollbackApp") {
    const app = host.app;
    if (app.previousGeneration) {
      host.app = {
        ...app,
        generation: app.previousGeneration,
        imageVersion: app.previousImageVersion,
        health: "healthy",
        healthSinceMs: Date.now(),
        previousGeneration: app.generation,
        previousImageVersion: app.imageVersion,
      };
      outcome.changed = true;
    }
    outcome.status.deploy = {
      ...emptyDeployResult(app.name),
      generation: host.app.generation,
      imageVersion: host.app.imageVersion,
      previousGeneration: app.generation,
    };
  }
  return outcome;
}
