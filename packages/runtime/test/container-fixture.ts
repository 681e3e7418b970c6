import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ContainerSpec,
  createRuntimeDriver,
  findContainerInit,
  isProcessAlive,
  type RuntimeDriver,
} from "@gild/runtime";
import {
  type BusyboxBehaviour,
  buildBusyboxRoot,
  busyboxServeCommand,
  freePort,
  registerCleanup,
} from "@gild/testkit";

/** GET a URL; resolves with status and body, rejects on connection errors. */
export function httpGet(url: string, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, timeout: timeoutMs }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on("error", reject);
  });
}

/** The pids of a process and all its descendants, read from /proc. */
export function processTree(pid: number): number[] {
  const out = [pid];
  const taskDir = `/proc/${pid}/task`;
  if (!existsSync(taskDir)) return out;
  for (const task of readdirSync(taskDir)) {
    let text = "";
    try {
      text = readFileSync(`${taskDir}/${task}/children`, "utf8");
    } catch {
      // The task ended while we looked: it has no children any more.
      text = "";
    }
    for (const child of text.trim().split(/\s+/).filter(Boolean)) out.push(...processTree(Number(child)));
  }
  return out;
}

/** Live processes whose command line mentions `needle` (a machine name). */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) out.push(Number(name));
    } catch {
      // Gone while we looked.
    }
  }
  return out;
}

export async function allGone(pids: number[]): Promise<boolean> {
  for (const pid of pids) if (await isProcessAlive(pid)) return false;
  return true;
}

/**
 * A scratch directory, a driver on it, and cleanup of every container started through `start` (stop
 * through the driver, and a SIGKILL of their processes should the run be interrupted).
 */
export class ContainerFixture {
  readonly dir: string;
  readonly driver: RuntimeDriver;
  private readonly started: Array<{ app: string; generation: number; unregister: () => void }> = [];

  private constructor(dir: string, driver: RuntimeDriver) {
    this.dir = dir;
    this.driver = driver;
  }

  static async create(prefix: string): Promise<ContainerFixture> {
    const dir = await mkdtemp(join(tmpdir(), `gild-rt-${prefix}-`));
    return new ContainerFixture(dir, createRuntimeDriver("process", { runDir: join(dir, "run") }));
  }

  /** A busybox root, a data dir and a spec serving on a free port. */
  async spec(
    app: string,
    generation: number,
    options: { behaviour?: BusyboxBehaviour; marker?: string; stopTimeoutMs?: number } = {},
  ): Promise<{ spec: ContainerSpec; port: number; dataDir: string }> {
    const rootfs = join(this.dir, `${app}-${generation}`, "rootfs");
    const dataDir = join(this.dir, "data", app);
    await mkdir(rootfs, { recursive: true });
    await mkdir(dataDir, { recursive: true });
    const behaviour = options.behaviour ?? "ok";
    await buildBusyboxRoot(rootfs, { behaviour, marker: options.marker ?? `gild-test v${generation}` });
    const port = await freePort();
    const spec: ContainerSpec = {
      app,
      generation,
      rootfs,
      command: busyboxServeCommand(port, "/data"),
      env: { GILD_APP: app },
      binds: [{ source: dataDir, target: "/data" }],
      logFile: join(this.dir, "logs", `${app}-${generation}.log`),
      stopTimeoutMs: options.stopTimeoutMs ?? 5_000,
    };
    return { spec, port, dataDir };
  }

  async start(spec: ContainerSpec) {
    const status = await this.driver.start(spec);
    const pid = status.pid;
    const init = pid === null ? null : await findContainerInit(pid);
    const unregister = registerCleanup(`container ${spec.app}/${spec.generation}`, () => {
      for (const p of [init, pid]) {
        if (p === null) continue;
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    });
    this.started.push({ app: spec.app, generation: spec.generation, unregister });
    return status;
  }

  /** Stop every container started here (each at most once), close the driver, remove the dir. */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    for (const { app, generation, unregister } of this.started.splice(0)) {
      try {
        await this.driver.stop(app, generation, { timeoutMs: 2_000 });
        unregister();
      } catch (err) {
        errors.push(err);
      }
    }
    this.driver.close();
    await rm(this.dir, { recursive: true, force: true });
    if (errors.length > 0) throw errors[0];
  }
}
