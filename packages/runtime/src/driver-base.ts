import { resolve } from "node:path";
import { GildError, type Logger, silentLogger } from "@gild/core";
import { execInContainer } from "./container-exec.js";
import { DEFAULT_START_TIMEOUT_MS, DEFAULT_WATCH_INTERVAL_MS, ExitWatch } from "./exit-watch.js";
import { findContainerInit } from "./proc.js";
import { assertContainerId } from "./spec.js";
import type { ContainerStatus, ExecResult, RuntimeDriverOptions } from "./types.js";

/**
 * What both drivers share: their options, the exit watch that reports containers ending on their own,
 * and exec into a running container (through its init, once nspawn has made it: findContainerInit).
 * A driver says how it finds a container's nspawn and how it checks for ends.
 */
export abstract class DriverBase {
  protected readonly runDir: string;
  protected readonly log: Logger;
  protected readonly startTimeoutMs: number;
  protected readonly exits: ExitWatch;

  protected constructor(options: RuntimeDriverOptions, driver: "process" | "systemd", watched: string) {
    this.runDir = resolve(options.runDir);
    this.log = (options.log ?? silentLogger).child({ component: "runtime", driver });
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.exits = new ExitWatch({
      intervalMs: options.watchIntervalMs ?? DEFAULT_WATCH_INTERVAL_MS,
      check: () => this.checkEnds(),
      log: this.log,
      what: watched,
    });
  }

  /** Look for containers that ended on their own; true while any is still watched. */
  protected abstract checkEnds(): Promise<boolean>;

  /** The pid of a running container's systemd-nspawn, or null when it does not run. */
  protected abstract nspawnPid(app: string, generation: number): Promise<number | null>;

  async exec(
    app: string,
    generation: number,
    argv: string[],
    opts: { timeoutMs: number },
  ): Promise<ExecResult> {
    assertContainerId(app, generation);
    const nspawn = await this.nspawnPid(app, generation);
    const init = nspawn === null ? null : await findContainerInit(nspawn);
    if (init === null) {
      throw new GildError("GILD_NOT_FOUND", `${app} generation ${generation} is not running`);
    }
    return execInContainer(init, argv, opts.timeoutMs);
  }

  onExit(listener: (status: ContainerStatus) => void): () => void {
    return this.exits.onExit(listener);
  }

  close(): void {
    this.exits.close();
  }
}
