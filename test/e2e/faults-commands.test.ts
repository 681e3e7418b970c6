import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "@gild/protocol";
import {
  buildBusyboxRoot,
  busyboxServeCommand,
  createLoopBtrfs,
  freePort,
  gildCliPath,
  journalEntries,
  type LoopBtrfs,
  logTail,
  processAlive,
  run,
  StandInController,
  waitFor,
  writeJoinedState,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// The same command id delivered twice at the same moment, which a controller's re-send after a
// reconnect can do. A real agent (its own pool, real containers) against a stand-in controller that
// speaks the protocol and sends exactly the frames the test wants.

describeWith(["root", "btrfs", "nspawn", "busybox"], "commands delivered twice", () => {
  let fs: LoopBtrfs;
  let controller: StandInController;
  let agent: ChildProcess | undefined;
  let pool: string;
  let stateDir: string;
  let logFile: string;
  const app = `dup-${randomBytes(3).toString("hex")}`;

  beforeAll(async () => {
    fs = await createLoopBtrfs({ sizeMiB: 512, label: "gild-dup-test" });
    pool = join(fs.mountPoint, "pool");
    stateDir = join(fs.dir, "state");
    logFile = join(fs.dir, "agent.log");
    // The image the command deploys, made on the agent's own pool.
    const tree = await buildBusyboxRoot(join(fs.dir, "tree"), { marker: "dup v1" });
    await run(process.execPath, [
      gildCliPath(),
      "image",
      "create",
      "web",
      "--from-dir",
      tree,
      "--pool",
      pool,
    ]);
    // A joined agent's state, pointing at the stand-in controller.
    controller = await StandInController.start();
    writeJoinedState(stateDir, controller.url, "dup-host");
    const log = openSync(logFile, "a");
    agent = spawn(
      process.execPath,
      [gildCliPath(), "agent", "run", "--state-dir", stateDir, "--pool", pool, "--runtime", "process"],
      { stdio: ["ignore", log, log] },
    );
    closeSync(log);
    await waitFor(() => controller.ready || (agent?.exitCode !== null && "exited"), {
      what: "the agent connected and reporting",
      timeoutMs: 60_000,
    }).then((v) => {
      if (v === "exited") throw new Error(`the agent exited: ${logTail(logFile)}`);
    });
  });

  afterAll(async () => {
    if (agent?.pid !== undefined && controller?.ready) {
      // Its containers outlive the agent: remove the app through the agent first.
      const id = "cleanup-remove";
      controller.deliver({ commandId: id, removeApp: { name: app, purgeData: true } });
      await waitFor(() => controller.finals(id, false).length > 0, {
        what: "the app removed",
        timeoutMs: 60_000,
      }).catch(() => undefined);
    }
    if (agent?.pid !== undefined && processAlive(agent.pid)) {
      const exited = new Promise((resolve) => agent?.once("exit", resolve));
      agent.kill("SIGTERM");
      await exited;
    }
    await controller?.close();
    await fs?.destroy();
  });

  it("h. the same command id twice at the same moment runs once: one result, one generation, one journal entry", async () => {
    const port = await freePort();
    const id = `dup-${randomBytes(4).toString("hex")}`;
    const command: Command = {
      commandId: id,
      deployApp: {
        spec: {
          name: app,
          imageLine: "web",
          command: busyboxServeCommand(port, "/srv/data"),
          env: {},
          dataMount: "/srv/data",
          codeLine: "",
          codeMount: "",
          health: {
            kind: "tcp",
            target: `127.0.0.1:${port}`,
            command: [],
            intervalMs: 200,
            timeoutMs: 1_000,
            initialDelayMs: 0,
            minHealthyMs: 500,
          },
          stopTimeoutMs: 5_000,
          port,
        },
        imageVersion: 1,
        codeVersion: 0,
        healthyDeadlineMs: 30_000,
        specHash: "dup-test",
      },
    };
    controller.deliver(command, 2);
    await waitFor(() => controller.finals(id, false).length > 0, {
      what: "the deploy's result",
      timeoutMs: 90_000,
    });
    // Asked again later: the journaled answer, not a third run.
    controller.deliver(command);
    await waitFor(() => controller.finals(id, true).length > 0, {
      what: "the replayed result",
      timeoutMs: 30_000,
    });
    const finals = controller.finals(id, false);
    expect(finals.length).toBe(1);
    expect(finals[0]?.state, logTail(logFile)).toBe("succeeded");
    expect(finals[0]?.deploy?.generation).toBe(1);
    // One generation made, one container's worth of starts, one journal entry.
    const appDir = join(pool, "apps", app);
    expect(readdirSync(appDir).filter((n) => /^\d+$/.test(n))).toEqual(["1"]);
    expect(existsSync(join(appDir, "2"))).toBe(false);
    expect(journalEntries(stateDir).filter((e) => e.commandId === id)).toHaveLength(1);
  });
});
