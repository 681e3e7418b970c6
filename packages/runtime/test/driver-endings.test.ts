import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRuntimeDriver, findContainerInit, type RuntimeDriver } from "@gild/runtime";
import { BootedSystemd, EXIT_AT_START_CODE, findRepoRoot } from "@gild/testkit";
import {
  ENDING_CASES,
  type EndingCase,
  type EndingObservation,
  observeEnding,
} from "@gild/testkit/driver-endings";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from "vitest";
import { processesMentioning } from "./container-fixture.js";

// How a container ended, as each driver reports it through status(), onExit listeners and stop(): one
// table (test/kit's driver-endings), the same expectations for both drivers. The systemd driver needs
// systemd as PID 1, which this machine does not have: it runs inside a booted Debian container.

const WATCH_INTERVAL_MS = 100;
const observer = fileURLToPath(new URL("./fixtures/observe-ending.mjs", import.meta.url));
const unreadFailures = fileURLToPath(new URL("./fixtures/unread-failures.mjs", import.meta.url));

function expectEnding(ending: EndingCase, seen: EndingObservation): void {
  const { expected } = ending;
  const ended = { ...expected.status, pid: null };
  // start() resolves once the container's init runs, or with how it ended when nspawn ended first.
  if (!seen.started.running) expect(seen.started).toMatchObject(ended);
  if (expected.onExit) {
    expect(seen.exits).toHaveLength(1);
    expect(seen.exits[0]).toMatchObject({ ...expected.onExit, pid: null });
  } else expect(seen.exits).toEqual([]);
  expect(seen.status).toMatchObject(ended);
  expect(seen.stop).toEqual(expected.stop);
  expect(seen.stopAgain).toEqual(expected.stop);
  expect(seen.statusAfterStop).toMatchObject(ended);
  for (const text of expected.log) expect(seen.log).toContain(text);
  if (expected.stopMs) {
    expect(seen.stopMs).toBeGreaterThanOrEqual(expected.stopMs.min);
    expect(seen.stopMs).toBeLessThan(expected.stopMs.max);
  }
}

describeWith(["root", "nspawn", "busybox"], "how containers end: the process driver", () => {
  let dir: string;
  let driver: RuntimeDriver;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "gild-rt-end-"));
    driver = createRuntimeDriver("process", { runDir: join(dir, "run"), watchIntervalMs: WATCH_INTERVAL_MS });
  });

  afterEach(async () => {
    driver?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const ending of ENDING_CASES) {
    it(ending.name, async () => {
      const seen = await observeEnding(driver, ending.name, {
        dir,
        findInit: findContainerInit,
        quietMs: 5 * WATCH_INTERVAL_MS,
      });
      expectEnding(ending, seen);
      expect(processesMentioning(dir)).toEqual([]);
    });
  }
});

describeWith(
  ["root", "nspawn", "debootstrap"],
  "how containers end: the systemd driver, under systemd as PID 1 (a booted Debian container)",
  () => {
    let scratch: string | undefined;
    let booted: BootedSystemd | undefined;

    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), "gild-rt-boot-"));
      // No package cache unless the machine offers one (as the quickstart test): it must work from empty.
      const cacheDir = process.env.GILD_QUICKSTART_CACHE ?? join(scratch, "debs");
      // The built repo and this Node.js, read-only at the same paths: the observer runs from them.
      booted = await BootedSystemd.boot({
        dir: scratch,
        cacheDir,
        bindReadOnly: [findRepoRoot(), process.execPath],
      });
      const { debootstrapMs, bootMs } = booted.timings;
      process.stdout.write(`booted systemd: debootstrap ${debootstrapMs} ms, boot ${bootMs} ms\n`);
    }, 12 * 60_000);

    afterAll(async () => {
      const machine = booted?.machine;
      await booted?.destroy();
      if (scratch) await rm(scratch, { recursive: true, force: true });
      if (machine) expect(processesMentioning(machine)).toEqual([]);
    }, 60_000);

    /** Run a fixture inside with this Node.js; its last stdout line is JSON. */
    async function inside<T>(argv: string[]): Promise<T> {
      if (!booted) throw new Error("the container did not boot");
      const out = await booted.run([process.execPath, ...argv], 60_000);
      expect(out.exitCode, `${argv.join(" ")}:\n${out.stderr}`).toBe(0);
      return JSON.parse(out.stdout.trim().split("\n").at(-1) ?? "") as T;
    }

    ENDING_CASES.forEach((ending, index) => {
      it(ending.name, async () => {
        expectEnding(
          ending,
          await inside<EndingObservation>([observer, ending.name, `/tmp/endings/${index}`]),
        );
      });
    });

    it("reads and resets units that failed while no driver watched, which then block no start", async () => {
      const seen = await inside<{
        failedBefore: string;
        adopted: unknown[];
        unitsAfterAdopt: string;
        statuses: unknown[];
        restarted: unknown;
        stopped: unknown;
        unitsAtEnd: string;
      }>([unreadFailures, "/tmp/unread"]);
      expect(seen.failedBefore).toMatch(/gild-app-unread-1\.service\s+loaded\s+failed/);
      expect(seen.failedBefore).toMatch(/gild-app-unread-2\.service\s+loaded\s+failed/);
      expect(seen.adopted).toEqual([]);
      // Read once by adopt(), reset, and remembered: they do not pile up.
      expect(seen.unitsAfterAdopt).toBe("");
      const failed = { running: false, pid: null, exitCode: EXIT_AT_START_CODE, signal: null };
      expect(seen.statuses).toEqual([
        expect.objectContaining({ generation: 1, ...failed }),
        expect.objectContaining({ generation: 2, ...failed }),
      ]);
      // A third failed unit nobody read is in the way of nothing.
      expect(seen.restarted).toMatchObject({ generation: 3, running: true });
      expect(seen.stopped).toEqual({ graceful: true, exitCode: 0 });
      expect(seen.unitsAtEnd).toBe("");
    });

    it("leaves no unit behind", async () => {
      if (!booted) throw new Error("the container did not boot");
      const units = await booted.run(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "gild-app-*"],
        10_000,
      );
      expect(units.stdout.trim()).toBe("");
    });
  },
);
