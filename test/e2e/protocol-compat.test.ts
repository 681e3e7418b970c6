import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROTOCOL_VERSION } from "@gild/protocol";
import {
  appInstances,
  buildRelease,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  fetchPage,
  gildCliPath,
  hasCommit,
  logTail,
  type ReleaseBuild,
  StandInController,
  updateImage,
  waitFor,
  watchHostUpdate,
  watchRollout,
  writeJoinedState,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// Protocol compatibility: the controller serves agents of its own protocol version and the one
// before, so a fleet is upgraded one agent at a time. The agent of protocol 1 here is the real one: the
// release before protocol 2 (tagged protocol-v1), built from this checkout's history.
const PROTOCOL_1_RELEASE = "e9a4a027227a48d7b8fe58900ed4cd871520f1c7";

const PORT = 8080;

describeWith(
  ["root", "btrfs", "nspawn", "netns", "busybox"],
  "protocol 1 agents under a protocol 2 controller",
  () => {
    let scratch: string;
    let v1: ReleaseBuild;
    let fleet: Fleet;

    beforeAll(async () => {
      scratch = mkdtempSync(join(tmpdir(), "gild-compat-"));
      if (!(await hasCommit(PROTOCOL_1_RELEASE)))
        throw new Error(`the checkout's history lacks ${PROTOCOL_1_RELEASE} (a shallow clone?): fetch it`);
      v1 = await buildRelease(PROTOCOL_1_RELEASE, join(scratch, "v1"));
      // host-1 runs the release before; host-2 this one.
      fleet = await createFleet({ hosts: 2, hostCli: (i) => (i === 1 ? v1.cli : undefined) });
      await createBusyboxImage(fleet, "web", { marker: "release-1" });
    }, 900_000);

    afterAll(async () => {
      await fleet?.destroy();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    });

    const host = (n: number) => fleet.hosts[n - 1] as Fleet["hosts"][number];

    it("joins both: the controller knows each one's protocol version", async () => {
      const hosts = await fleet.gildJson<Array<{ name: string; state: string; protocolVersion: number }>>([
        "hosts",
      ]);
      expect(hosts.map((h) => [h.name, h.state, h.protocolVersion])).toEqual([
        ["host-1", "online", 1],
        ["host-2", "online", PROTOCOL_VERSION],
      ]);
    });

    it("pushes an image to both and deploys an app on both", async () => {
      const pushed = await fleet.gild(["image", "push", "web@1", "--hosts", "host-1,host-2"], {
        timeoutMs: 180_000,
      });
      expect(pushed.code, pushed.stderr).toBe(0);
      await createBusyboxApp(fleet, { hosts: "host-1,host-2", port: PORT });
      await deployApp(fleet, "site", "web@1", 180_000);
      for (const n of [1, 2]) expect(await fetchPage(host(n).url(PORT, "/"))).toContain("release-1");
      const logs = await fleet.gild(["app", "logs", "site", "--host", "host-1"]);
      expect(logs.stdout).toContain("serve: listening");
    });

    it("rolls a version out over both, the protocol 1 host as the canary, and rolls a bad one back", async () => {
      await updateImage(fleet, "web", "sed -i 's/release-1/release-2/g' /www/index.html");
      const strategy = ["--canary", "host-1", "--waves", "100%", "--promote", "auto", "--min-healthy", "1s"];
      const good = await fleet.gildJson<{ id: string }>([
        "rollout",
        "start",
        "web@2",
        ...strategy,
        "--bake",
        "1s",
        "--canary-bake",
        "1s",
      ]);
      const done = await watchRollout(fleet, good.id);
      expect(done.code, done.stderr).toBe(0);
      for (const n of [1, 2]) expect(await fetchPage(host(n).url(PORT, "/"))).toContain("release-2");
      await waitFor(
        async () =>
          (await appInstances(fleet, "site")).every((i) => i.imageVersion === 2 && i.health === "healthy"),
        { what: "both healthy on web@2", timeoutMs: 60_000 },
      );

      await updateImage(fleet, "web", "rm /www/healthz", { from: 2 });
      const bad = await fleet.gildJson<{ id: string }>([
        "rollout",
        "start",
        "web@3",
        ...strategy,
        "--healthy-deadline",
        "8s",
      ]);
      const failed = await watchRollout(fleet, bad.id);
      expect(failed.code).toBe(1);
      const view = failed.view;
      expect(view.state).toBe("failed");
      expect(view.waves[0]?.hosts[0]?.state).toBe("rolled-back");
      for (const n of [1, 2]) expect(await fetchPage(host(n).url(PORT, "/"))).toContain("release-2");
    });

    it("fails a host update on the protocol 1 host at once (GILD_PROTO_VERSION): nothing is sent it cannot run", async () => {
      const started = await fleet.gildJson<{ id: string }>([
        "host-update",
        "start",
        "--hosts",
        "host-1,host-2",
        "--canary",
        "host-1",
        "--on-failure",
        "fail",
        "--command",
        "true",
      ]);
      const done = await watchHostUpdate(fleet, started.id, 60_000);
      expect(done.code).toBe(1);
      expect(done.view.state).toBe("failed");
      const [canary, other] = done.view.waves.flatMap((w) => w.hosts);
      expect(canary).toMatchObject({ name: "host-1", state: "failed" });
      expect(canary?.reason).toContain("protocol 1");
      expect(other).toMatchObject({ name: "host-2", state: "pending" });
      // The protocol 1 agent is still connected and serving: it was never sent what it cannot decode.
      expect((await fleet.gildJson<Array<{ name: string; state: string }>>(["hosts"]))[0]?.state).toBe(
        "online",
      );
    });

    it("a controller older than the agent is refused by the agent, which stops with status 78", async () => {
      const controller = await StandInController.start({ welcomeVersion: PROTOCOL_VERSION - 1 });
      const stateDir = join(scratch, "older-controller");
      const logFile = join(scratch, "older-controller.log");
      writeJoinedState(stateDir, controller.url);
      const log = openSync(logFile, "a");
      let agent: ChildProcess | undefined;
      try {
        agent = spawn(
          process.execPath,
          [gildCliPath(), "agent", "run", "--state-dir", stateDir, "--pool", join(host(2).poolPath, "older")],
          { stdio: ["ignore", log, log] },
        );
        const code = await new Promise<number | null>((resolve) => agent?.once("exit", resolve));
        expect(code, logTail(logFile)).toBe(78);
        expect(logTail(logFile)).toContain("upgrade the controller first");
        expect(controller.hello?.protocolVersion).toBe(PROTOCOL_VERSION);
      } finally {
        closeSync(log);
        if (agent?.exitCode === null) agent.kill("SIGKILL");
        await controller.close();
      }
    });
  },
);
