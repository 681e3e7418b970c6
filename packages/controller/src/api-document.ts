import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GildError } from "@gild/core";
import { buildController } from "./app.js";
import { resolveControllerConfig } from "./config.js";
import { createControllerLogger, openControllerState } from "./main.js";
import type { ControllerImageBuilder, ControllerImageStore } from "./services.js";

const unavailable = () => new GildError("GILD_UNAVAILABLE", "this controller only describes its API");

/**
 * The API's OpenAPI document (what GET /v1/openapi.json serves), from a controller built in a temporary
 * directory and thrown away: for `pnpm docs:api`, without a running controller, root or a pool.
 */
export async function describeApi(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), "gild-api-doc-"));
  try {
    const config = resolveControllerConfig({
      dataDir: join(dir, "data"),
      pool: join(dir, "pool"),
      listen: "127.0.0.1:0",
      logLevel: "silent",
    });
    const state = openControllerState(config);
    const imageStore: ControllerImageStore = {
      list: async () => [],
      get: async () => Promise.reject(unavailable()),
      exists: async () => false,
      remove: async () => undefined,
      sendStream: () => {
        throw unavailable();
      },
    };
    const imageBuilder: ControllerImageBuilder = {
      update: async () => Promise.reject(unavailable()),
      createFromDir: async () => Promise.reject(unavailable()),
      createFromDebootstrap: async () => Promise.reject(unavailable()),
    };
    const controller = await buildController({
      config,
      log: createControllerLogger("silent"),
      ...state,
      imageStore,
      imageBuilder,
      capabilities: {
        kernelVersion: "",
        progsVersion: "",
        canSendCompressed: false,
        maxReceiveStreamVersion: 1,
      },
    });
    try {
      // A deep copy: the document is plain JSON, and the caller may change it.
      return JSON.parse(JSON.stringify(controller.app.swagger())) as Record<string, unknown>;
    } finally {
      await controller.close();
      state.store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
