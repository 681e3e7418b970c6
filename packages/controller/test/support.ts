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
import pg from "pg";
import type { DatabaseLocation } from "../src/store/db.js";
import type { HostInventory, HostRecord } from "../src/store/hosts-repo.js";

/**
 * What a test made, to undo in reverse order once it ended: each step is pushed right after the thing
 * it undoes was made, so a setup that failed half way undoes what it did make, and each step runs on
 * its own (one that throws never keeps the others from running; the first error is thrown after).
 */
export class Undo {
  private steps: Array<() => unknown> = [];

  push(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    let failure: { err: unknown } | undefined;
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}

/**
 * The database of a test's store. SQLite in `dir` by default; when GILD_TEST_POSTGRES_URL names a
 * PostgreSQL server (test/run starts one for the second pass of the controller's tests), a database of
 * its own on that server, dropped by `drop`.
 */
export interface TestDatabase {
  location: DatabaseLocation;
  /** The controller's `database` setting for it. */
  setting: string;
  drop(): Promise<void>;
}

export const TEST_POSTGRES_URL = process.env.GILD_TEST_POSTGRES_URL;

export async function createTestDatabase(
  dir: string,
  serverUrl: string | undefined = TEST_POSTGRES_URL,
): Promise<TestDatabase> {
  if (serverUrl === undefined || serverUrl === "") {
    const path = join(dir, "gild.db");
    return { location: { kind: "sqlite", path }, setting: path, drop: async () => undefined };
  }
  const name = `gild_test_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    location: { kind: "postgres", url: url.toString() },
    setting: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

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
  const database = await createTestDatabase(dataDir);
  const clock = { offsetMs: 0 };
  const config = resolveControllerConfig({
    dataDir,
    database: database.setting,
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
      await database.drop();
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
  const undo = new Undo();
  try {
    return await makeTestApp(undo);
  } catch (err) {
    await undo.run().catch(() => undefined);
    throw err;
  }
}

async function makeTestApp(undo: Undo): Promise<TestApp> {
  const dir = await mkdtemp(join(tmpdir(), "gild-api-"));
  undo.push(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, "data"), { recursive: true });
  const database = await createTestDatabase(join(dir, "data"));
  undo.push(() => database.drop());
  const config = resolveControllerConfig({
    dataDir: join(dir, "data"),
    database: database.setting,
    pool: join(dir, "pool"),
    listen: "127.0.0.1:0",
    logLevel: "silent",
  });
  const state = openControllerState(config);
  undo.push(() => state.store.close());
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
      undo.push(() => controller.close());
      await undo.run();
    },
  };
}

/**
 * A joined, online host whose inventory runs the app "blog" on image line "web" (generation 3), with
 * the given images: what the rollout observer and dispatcher tests plan for.
 */
export function blogHost(
  id: string,
  options: {
    health?: "healthy" | "unhealthy";
    imageVersion?: number;
    images?: HostInventory["images"];
  } = {},
): HostRecord {
  const inventory = {
    hostId: id,
    poolFreeBytes: 1,
    images: options.images ?? [],
    apps: [
      {
        name: "blog",
        generation: 3,
        imageLine: "web",
        imageVersion: options.imageVersion ?? 1,
        codeLine: "",
        codeVersion: 0,
        health: options.health ?? "healthy",
        healthSinceMs: 1000,
      },
    ],
  } as unknown as HostInventory;
  return {
    id,
    name: `web-${id.slice(-4)}`,
    labels: {},
    state: "online",
    lastSeen: 1,
    joinedAt: 1,
    agentVersion: null,
    protocolVersion: 2,
    kernelVersion: null,
    btrfsProgsVersion: null,
    maxStreamVersion: 2,
    facts: {},
    inventory,
  };
}
