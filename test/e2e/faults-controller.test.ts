import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import {
  apiRequest,
  appInstances,
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  fillFilesystem,
  journalEntries,
  type RolloutStatusView as RolloutView,
  rolloutStatus,
  run,
  updateImage,
  waitFor,
  watchRollout,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// The controller's own disk: its data dir (SQLite database, keys, artifacts) on a small filesystem of
// its own that a test fills up in the middle of a rollout.

const PORT = 8080;

describeWith(["root", "btrfs", "nspawn", "netns", "busybox"], "controller faults", () => {
  let fleet: Fleet;
  let fillers: string[] = [];

  beforeAll(async () => {
    fleet = await createFleet({ hosts: 2, controllerDataMiB: 192 });
    await createBusyboxImage(fleet, "web", { marker: "release-1" });
    await createBusyboxApp(fleet, { hosts: "host-1,host-2", port: PORT });
    await deployApp(fleet, "site", "web@1");
    await updateImage(fleet, "web", "sed -i 's/release-1/release-2/g' /www/index.html");
  });

  afterAll(async () => {
    for (const file of fillers) rmSync(file, { force: true });
    await fleet?.destroy();
  });

  const status = (id: string) => rolloutStatus(fleet, id);
  const backupFiles = () => {
    const dir = join(fleet.controllerDataDir, "backups");
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  const switchesSent = (hostIndex: number, rolloutId: string) =>
    journalEntries(fleet.hosts[hostIndex]?.stateDir as string).filter(
      (e) => e.commandId.startsWith(`${rolloutId}:`) && e.kind === "deployApp",
    ).length;

  it("f. its data disk fills mid-rollout: 503 GILD_STORE_UNAVAILABLE, nothing half-written or sent early, the rollout resumes once space is back", async () => {
    const controllerPid = fleet.controllerPid();
    const started = await fleet.gildJson<RolloutView>([
      "rollout",
      "start",
      "web@2",
      "--canary",
      "host-1",
      "--waves",
      "100%",
      "--promote",
      "auto",
      "--min-healthy",
      "1s",
      "--canary-bake",
      "8s",
    ]);
    await waitFor(async () => (await status(started.id)).clocks.bakeUntil !== null, {
      what: "the canary baking",
      timeoutMs: 90_000,
    });
    fillers = await fillFilesystem(fleet.controllerDataDir, 0);
    // SQLite reuses the room its write-ahead log already has: writes fail once that is used up too.
    let answer = await apiRequest(fleet.controllerDataDir, "POST", "/v1/tokens", {});
    for (let i = 0; i < 20_000 && answer.status !== 503; i++) {
      expect(answer.status, answer.body).toBe(200);
      answer = await apiRequest(fleet.controllerDataDir, "POST", "/v1/tokens", {});
    }
    expect(answer.status, answer.body).toBe(503);
    expect(JSON.parse(answer.body).error.code).toBe("GILD_STORE_UNAVAILABLE");
    // What the operator sees: a coded error with a hint, and reads still answer.
    const refused = await fleet.gild(["token", "create"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("GILD_STORE_UNAVAILABLE");
    expect(refused.stderr).toMatch(/hint: .*space/);
    // A backup cannot be made either, and says why; nothing half-written is left under backups/.
    const backupRefused = await fleet.gild(["backup"]);
    expect(backupRefused.code).not.toBe(0);
    expect(backupRefused.stderr).toMatch(/GILD_(NO_SPACE|STORE_UNAVAILABLE)/);
    expect(backupFiles()).toEqual([]);
    const bakeUntil = (await status(started.id)).clocks.bakeUntil as number;
    await waitFor(() => Date.now() > bakeUntil + 5_000, {
      what: "the bake's end, and some",
      timeoutMs: 30_000,
    });
    // The next wave's start could not be stored, so nothing of it went out: host-2 was not switched.
    const during = await status(started.id);
    expect(during.state).toBe("running");
    expect(during.currentWave).toBe(0);
    expect(switchesSent(1, started.id)).toBe(0);
    expect(fleet.controllerPid()).toBe(controllerPid);

    for (const file of fillers) rmSync(file, { force: true });
    fillers = [];
    await run("btrfs", ["filesystem", "sync", fleet.controllerDataDir]);
    const res = await watchRollout(fleet, started.id);
    expect(res.code, res.stderr).toBe(0);
    expect(res.view.state).toBe("succeeded");
    // Each host switched exactly once, and both serve the new version.
    expect([switchesSent(0, started.id), switchesSent(1, started.id)]).toEqual([1, 1]);
    const instances = await appInstances(fleet, "site");
    expect(instances.map((i) => i.imageVersion)).toEqual([2, 2]);
    expect(fleet.controllerPid()).toBe(controllerPid);
    // The space is usable again.
    expect((await apiRequest(fleet.controllerDataDir, "POST", "/v1/tokens", {})).status).toBe(200);
    const backup = await fleet.gildJson<{ path: string; bytes: number }>(["backup"]);
    expect(backupFiles()).toEqual([basename(backup.path)]);
    expect(statSync(backup.path).size).toBe(backup.bytes);
  });
});
