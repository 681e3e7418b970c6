import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  type ContainerStatus,
  createRuntimeDriver,
  findContainerInit,
  isProcessAlive,
  machineName,
  type RuntimeDriver,
} from "@gild/runtime";
import { waitFor } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterEach, beforeEach, expect, it } from "vitest";
import { allGone, ContainerFixture, httpGet, processTree } from "./container-fixture.js";

const starter = fileURLToPath(new URL("./fixtures/start-container.mjs", import.meta.url));

/** Start a container from a separate Node process (a stand-in agent) and SIGKILL that process. */
async function startFromDoomedAgent(runDir: string, spec: object): Promise<ContainerStatus> {
  const child = spawn(process.execPath, [starter, runDir, JSON.stringify(spec)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = once(child, "exit");
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    const lines = createInterface({ input: child.stdout });
    const [line] = (await Promise.race([
      once(lines, "line"),
      exited.then(() => {
        throw new Error(`the starter exited early: ${stderr}`);
      }),
    ])) as [string];
    lines.close();
    return JSON.parse(line) as ContainerStatus;
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

describeWith(["root", "nspawn", "busybox"], "adoption of containers that outlived their agent", () => {
  let fx: ContainerFixture;
  let adopter: RuntimeDriver | undefined;

  beforeEach(async () => {
    fx = await ContainerFixture.create("adopt");
  });

  afterEach(async () => {
    // Whatever the test left running is stopped through a driver that adopts it.
    const cleaner = createRuntimeDriver("process", { runDir: join(fx.dir, "run") });
    try {
      for (const status of await cleaner.adopt()) {
        await cleaner.stop(status.app, status.generation, { timeoutMs: 2_000 });
      }
    } finally {
      cleaner.close();
      adopter?.close();
      adopter = undefined;
      await fx.destroy();
    }
  });

  it("re-attaches to a container whose agent was killed: same pid, still serving, not restarted", async () => {
    const runDir = join(fx.dir, "run");
    const { spec, port, dataDir } = await fx.spec("web", 3, { marker: "gild-test v3" });
    const before = await startFromDoomedAgent(runDir, spec);
    expect(before).toMatchObject({ app: "web", generation: 3, running: true });
    const pid = before.pid as number;
    // The agent is dead; its container is not.
    expect(await isProcessAlive(pid)).toBe(true);
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`)).body.includes("gild-test v3"), {
      timeoutMs: 15_000,
      what: "the orphaned container to serve",
    });

    adopter = createRuntimeDriver("process", { runDir });
    const adopted = await adopter.adopt();
    expect(adopted).toEqual([
      {
        app: "web",
        generation: 3,
        running: true,
        pid,
        startedAt: before.startedAt,
        exitCode: null,
        signal: null,
      },
    ]);
    expect(await adopter.status("web", 3)).toMatchObject({ running: true, pid });
    expect(await adopter.list()).toHaveLength(1);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).toContain("gild-test v3");
    expect((await readFile(join(dataDir, "starts.log"), "utf8")).trim().split("\n")).toHaveLength(1);
    const exec = await adopter.exec("web", 3, ["cat", "/www/index.html"], { timeoutMs: 5_000 });
    expect(exec.output).toContain("gild-test v3");

    const tree = processTree(pid);
    const stopped = await adopter.stop("web", 3);
    // An adopted container is not this process's child: its exit code cannot be known.
    expect(stopped).toEqual({ graceful: true, exitCode: null });
    expect(await allGone(tree)).toBe(true);
    expect(await adopter.adopt()).toEqual([]);
  });

  it("reports an adopted container that ends on its own", async () => {
    const runDir = join(fx.dir, "run");
    const { spec } = await fx.spec("fragile", 1);
    const before = await startFromDoomedAgent(runDir, spec);
    adopter = createRuntimeDriver("process", { runDir, watchIntervalMs: 50 });
    const exits: ContainerStatus[] = [];
    adopter.onExit((status) => exits.push(status));
    expect(await adopter.adopt()).toHaveLength(1);
    const init = (await findContainerInit(before.pid as number)) as number;
    process.kill(init, "SIGKILL");
    await waitFor(() => exits.length > 0, {
      timeoutMs: 10_000,
      what: "the onExit event of an adopted container",
    });
    expect(exits[0]).toMatchObject({ app: "fragile", generation: 1, running: false, pid: null });
    expect(await isProcessAlive(before.pid as number)).toBe(false);
  });

  it("refuses and removes pid files that do not name a live container of theirs", async () => {
    const runDir = join(fx.dir, "run");
    // Start one real container so the run dir exists and adoption has something true to find.
    const { spec, port } = await fx.spec("real", 1);
    await fx.start(spec);
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`)).status === 200, {
      timeoutMs: 15_000,
      what: "the container to serve",
    });
    const selfStat = await readFile("/proc/self/stat", "utf8");
    const selfStart = selfStat.slice(selfStat.lastIndexOf(")") + 2).split(" ")[19] as string;
    const impostor = {
      pid: process.pid,
      startTime: selfStart,
      machine: machineName("ghost", 1, runDir),
      app: "ghost",
      generation: 1,
      rootfs: spec.rootfs,
      logFile: spec.logFile,
      stopTimeoutMs: 1_000,
      startedAt: Date.now(),
    };
    const impostorFile = join(runDir, `${impostor.machine}.json`);
    await writeFile(impostorFile, JSON.stringify(impostor));
    const garbageFile = join(runDir, "garbage.json");
    await writeFile(garbageFile, "{ not json");

    adopter = createRuntimeDriver("process", { runDir });
    const adopted = await adopter.adopt();
    expect(adopted.map((s) => s.app)).toEqual(["real"]);
    await expect(readFile(impostorFile)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(readFile(garbageFile)).rejects.toMatchObject({ code: "ENOENT" });
    // This test process was not signalled, of course.
    expect(await adopter.status("ghost", 1)).toMatchObject({ running: false, pid: null });
  });
});
