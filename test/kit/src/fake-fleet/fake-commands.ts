import { randomUUID } from "node:crypto";
import {
  type AppInstance,
  type Command,
  type CommandKind,
  CommandState,
  type CommandStatus,
  decodeManifest,
  type ImageCopy,
} from "@gild/protocol";

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
  const id = command.commandId ?? "";
  const outcome: FakeCommandOutcome = {
    status: { commandId: id, state: CommandState.STATE_SUCCEEDED },
    changed: false,
    deployed: false,
    deployWithoutImage: false,
  };
  if (kind === "pullImage" && command.pullImage?.manifest) {
    const manifest = decodeManifest(command.pullImage.manifest);
    const present = host.images.some((i) => i.receivedUuid === manifest.uuid);
    const parent = host.images.find((i) => i.receivedUuid === manifest.parentUuid);
    if (!present) {
      host.images = [
        ...host.images,
        {
          line: manifest.line ?? "",
          version: manifest.version ?? 0,
          uuid: randomUUID(),
          receivedUuid: manifest.uuid ?? "",
          parentUuid: parent?.uuid ?? "",
          sizeBytes: Number(manifest.sizeBytes ?? 0),
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
  } else if (kind === "deployApp" && command.deployApp) {
    const deploy = command.deployApp;
    const version = deploy.imageVersion ?? 0;
    const app = host.app;
    if (!host.images.some((i) => i.line === app.imageLine && i.version === version)) {
      outcome.deployWithoutImage = true;
      outcome.status = {
        commandId: id,
        state: CommandState.STATE_FAILED,
        error: {
          code: "GILD_IMAGE_NOT_FOUND",
          message: `image ${app.imageLine}@${version} is not on this host`,
          hint: "",
        },
      };
      return outcome;
    }
    const generation = Math.max(...(app.generations ?? [0])) + 1;
    const previous = app.generation ?? 0;
    host.app = {
      ...app,
      generation,
      imageVersion: version,
      state: "running",
      health: "healthy",
      healthDetail: "running (no probe)",
      healthSinceMs: Date.now(),
      previousGeneration: previous,
      previousImageVersion: app.imageVersion ?? 0,
      generations: [previous, generation],
      specHash: deploy.specHash ?? "",
    };
    outcome.status.deploy = {
      name: app.name,
      generation,
      imageVersion: version,
      rolledBack: false,
      reason: "",
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
        imageVersion: app.previousImageVersion ?? 0,
        health: "healthy",
        healthSinceMs: Date.now(),
        previousGeneration: app.generation ?? 0,
        previousImageVersion: app.imageVersion ?? 0,
      };
      outcome.changed = true;
    }
    outcome.status.deploy = {
      name: app.name,
      generation: host.app.generation ?? 0,
      imageVersion: host.app.imageVersion ?? 0,
      rolledBack: false,
      reason: "",
      previousGeneration: app.generation ?? 0,
    };
  }
  return outcome;
}
