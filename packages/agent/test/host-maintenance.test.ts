import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT_REBOOT_BY_RESTART, HostMaintenance } from "@gild/agent";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";

const root = mkdtempSync(join(tmpdir(), "gild-maintenance-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A HostMaintenance over a fresh state dir, recording what it asks of the agent. */
function setup(rebootByRestart = true) {
  const stateDir = join(root, String(++n));
  mkdirSync(stateDir);
  const calls: string[] = [];
  const maintenance = new HostMaintenance({
    stateDir,
    log: pino({ level: "silent" }),
    stopApps: async () => void calls.push("stopApps"),
    restartApps: async () => void calls.push("restartApps"),
    rebootByRestart,
    exit: (code) => void calls.push(`exit ${code}`),
    rebootRequiredFile: join(stateDir, "reboot-required"),
  });
  return { stateDir, calls, maintenance };
}

describe("HostMaintenance", () => {
  it("a command that exits 0 succeeds with its result", async () => {
    const { maintenance, stateDir } = setup();
    writeFileSync(join(stateDir, "reboot-required"), "");
    await expect(
      maintenance.run({ argv: ["/bin/sh", "-c", "echo upgraded"], timeoutMs: 10_000 }),
    ).resolves.toEqual({
      hostCommand: { exitCode: 0, outputTail: "upgraded\n", rebootRequired: true },
    });
  });

  it("a command that exits non-zero fails with a coded error that carries its result", async () => {
    const { maintenance } = setup();
    const failure = maintenance.run({
      argv: ["/bin/sh", "-c", "echo 'E: broken' >&2; exit 100"],
      timeoutMs: 10_000,
    });
    await expect(failure).rejects.toMatchObject({
      code: "GILD_COMMAND_FAILED",
      message: "exit code 100: E: broken",
      result: { hostCommand: { exitCode: 100, outputTail: "E: broken\n", rebootRequired: false } },
    });
  });

  it("the test hook: a reboot stops the apps and exits; the next agent answers it as rebooted", async () => {
    const { maintenance, calls, stateDir } = setup(true);
    let settled = false;
    void maintenance.reboot("hu1:h1:reboot").then(() => (settled = true));
    await expect.poll(() => calls).toEqual(["stopApps", `exit ${EXIT_REBOOT_BY_RESTART}`]);
    expect(settled).toBe(false);
    expect(existsSync(join(stateDir, "reboot.json"))).toBe(true);

    const resumed = await maintenance.resumeAfterReboot();
    expect(resumed).toMatchObject({ commandId: "hu1:h1:reboot", kind: "rebootHost" });
    await expect(resumed?.run()).resolves.toEqual({});
    await maintenance.settle("hu1:h1:reboot");
    expect(existsSync(join(stateDir, "reboot.json"))).toBe(false);
    expect(await maintenance.resumeAfterReboot()).toBeUndefined();
  });

  it("a restart without a reboot (same boot id) answers the reboot command with a failure", async () => {
    const { maintenance, stateDir } = setup(false);
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    writeFileSync(
      join(stateDir, "reboot.json"),
      JSON.stringify({ commandId: "hu1:h1:reboot", bootId, byRestart: false, at: 0 }),
    );
    const resumed = await maintenance.resumeAfterReboot();
    await expect(resumed?.run()).rejects.toMatchObject({ code: "GILD_COMMAND_FAILED" });
  });

  it("a damaged reboot.json is a coded error, not a guess", async () => {
    const { maintenance, stateDir } = setup();
    writeFileSync(join(stateDir, "reboot.json"), "{not json");
    await expect(maintenance.resumeAfterReboot()).rejects.toMatchObject({ code: "GILD_STATE_CORRUPT" });
  });
});
