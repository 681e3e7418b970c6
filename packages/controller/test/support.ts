import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  type ControllerConfig,
  createControllerLogger,
  type RunningController,
  resolveControllerConfig,
  startController,
} from "@gild/controller";
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
