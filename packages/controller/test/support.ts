import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildController,
  type Controller,
  type ControllerConfig,
  type ControllerImageBuilder,
  type ControllerImageStore,
  createControllerLogger,
  openControllerState,
  type RunningController,
  resolveControllerConfig,
  startController,
} from "@gild/controller";
import { GildError } from "@gild/core";
import { createLoopBtrfs, type LoopBtrfs } from "@gild/testkit";

export interface TestController extends RunningController {
  config: ControllerConfig;
  clock: { offsetMs: number };
  fs: LoopBtrfs;
  /** Close the controller and its filesystem. */
  destroy(): Promise<void>;
}

/** A real controller on 127.0.0.1 with TLS, its data and pool on a loopback btrfs; a clock tests can move. */
export async function startTestController(
  options: { heartbeatInterval?: string } = {},
): Promise<TestController> {
  const fs = await createLoopBtrfs({ sizeMiB: 512 });
  const dataDir = join(fs.dir, "data");
  await mkdir(dataDir, { recursive: true });
  const clock = { offsetMs: 0 };
  const config = resolveControllerConfig({
    dataDir,
    pool: join(fs.mountPoint, "pool"),
    listen: "127.0.0.1:0",
    logLevel: "silent",
    ...(options.heartbeatInterval ? { heartbeatInterval: options.heartbeatInterval } : {}),
  });
  const running = await startController(config, {
    log: createControllerLogger("silent"),
    now: () => Date.now() + clock.offsetMs,
  });
  return {
    ...running,
    config,
    clock,
    fs,
    async destroy() {
      await running.close();
      await fs.destroy();
    },
  };
}

/** The API of a controller built in memory: no pool, no root, no listening socket (inject() only). */
export interface TestApp {
  controller: Controller;
  config: ControllerConfig;
  adminToken: string;
  metricsToken: string;
  destroy(): Promise<void>;
}

/** An image store with no images, for API tests that never make one. */
const noImages: ControllerImageStore = {
  list: async () => [],
  get: async (line: string, version: number) => {
    throw new GildError("GILD_IMAGE_NOT_FOUND", `no image ${line}@${version} in this test`);
  },
  exists: async () => false,
  remove: async () => undefined,
  sendStream: () => {
    throw new GildError("GILD_UNAVAILABLE", "this test's controller has no images to send");
  },
};

/** Image builds, for API tests that never make one. */
const noBuilds: ControllerImageBuilder = {
  update: async () => {
    throw new GildError("GILD_UNAVAILABLE", "this test's controller makes no images");
  },
  createFromDir: async () => {
    throw new GildError("GILD_UNAVAILABLE", "this test's controller makes no images");
  },
  createFromDebootstrap: async () => {
    throw new GildError("GILD_UNAVAILABLE", "this test's controller makes no images");
  },
};

/**
 * The controller's app (auth, validation, routes, store) in a temp dir, with an image store that holds
 * nothing: what the API's tests need, without root or btrfs (the privileged paths stay in e2e).
 */
export async function buildTestApp(): Promise<TestApp> {
  const dir = await mkdtemp(join(tmpdir(), "gild-api-"));
  const config = resolveControllerConfig({
    dataDir: join(dir, "data"),
    pool: join(dir, "pool"),
    listen: "127.0.0.1:0",
    logLevel: "silent",
  });
  const state = openControllerState(config);
  const controller = await buildController({
    config,
    log: createControllerLogger("silent"),
    ...state,
    imageStore: noImages,
    imageBuilder: noBuilds,
    capabilities: {
      kernelVersion: "",
      progsVersion: "",
      canSendCompressed: false,
      maxReceiveStreamVersion: 1,
    },
  });
  return {
    controller,
    config,
    adminToken: state.adminToken,
    metricsToken: state.metricsToken,
    async destroy() {
      await controller.close();
      state.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
