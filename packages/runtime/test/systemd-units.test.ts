import {
  buildSystemdRunArgs,
  type ContainerSpec,
  parseListUnits,
  parseSystemctlShow,
  parseTimespanMs,
  parseUnitName,
  unitName,
  unitStatus,
} from "@gild/runtime";
import { describe, expect, it } from "vitest";

// Argument building and output parsing of the systemd driver as pure functions, on output in the shape
// systemd 252 prints (some of it recorded in a booted container). The driver itself runs for real in
// driver-endings.test.ts, inside a booted systemd container.

const spec: ContainerSpec = {
  app: "api-v2",
  generation: 12,
  rootfs: "/pool/apps/api-v2/12",
  command: ["/usr/sbin/nginx", "-g", "daemon off;"],
  env: {},
  binds: [],
  logFile: "/var/log/gild/api-v2-12.log",
  stopTimeoutMs: 7_500,
};

describe("systemd unit names", () => {
  it("round-trip, with app names that end in digits", () => {
    expect(unitName("api-v2", 12)).toBe("gild-app-api-v2-12.service");
    expect(parseUnitName("gild-app-api-v2-12.service")).toEqual({ app: "api-v2", generation: 12 });
    expect(parseUnitName("gild-app-web-2-3.service")).toEqual({ app: "web-2", generation: 3 });
    expect(parseUnitName("gild-app-web.service")).toBeUndefined();
    expect(parseUnitName("nginx.service")).toBeUndefined();
    expect(parseUnitName("gild-app-web-0.service")).toBeUndefined();
  });
});

describe("systemd-run arguments", () => {
  it("run nspawn as a transient notify service with the stop timeout, log and kill settings, kept once it failed", () => {
    const args = buildSystemdRunArgs(spec, "gild-api-v2-12-0123abcd", { startTimeoutMs: 15_000 });
    const dash = args.indexOf("--");
    expect(args.slice(0, dash)).toEqual([
      "--unit=gild-app-api-v2-12.service",
      "--description=gild app api-v2 generation 12",
      "--quiet",
      "--property=Type=notify",
      "--property=KillMode=mixed",
      "--property=Delegate=yes",
      "--property=KillSignal=SIGTERM",
      "--property=TimeoutStartSec=15000ms",
      "--property=TimeoutStopSec=7500ms",
      "--property=TimeoutStopFailureMode=abort",
      "--property=WatchdogSignal=SIGTERM",
      "--property=TimeoutAbortSec=5000ms",
      "--property=StandardOutput=append:/var/log/gild/api-v2-12.log",
      "--property=StandardError=append:/var/log/gild/api-v2-12.log",
    ]);
    // Without --collect a failed unit keeps its exit code until the driver has read it.
    expect(args).not.toContain("--collect");
    expect(args[dash + 1]).toBe("systemd-nspawn");
    expect(args).toContain("--machine=gild-api-v2-12-0123abcd");
    expect(args.slice(-4)).toEqual(["--", "/usr/sbin/nginx", "-g", "daemon off;"]);
  });
});

describe("systemctl show parsing", () => {
  it("reads a running unit", () => {
    const state = parseSystemctlShow(
      [
        "MainPID=4242",
        "Result=success",
        "LoadState=loaded",
        "ActiveState=active",
        "SubState=running",
        "ExecMainStartTimestampMonotonic=52000000",
        "ExecMainCode=0",
        "ExecMainStatus=0",
        "TimeoutStopUSec=7.500000s",
        "",
      ].join("\n"),
    );
    expect(state).toEqual({
      loaded: true,
      activeState: "active",
      subState: "running",
      result: "success",
      mainPid: 4242,
      exitCode: null,
      signal: null,
      startedMonotonicUs: 52_000_000,
      stopTimeoutMs: 7_500,
    });
    // Started 2 s before "now" on the monotonic clock.
    expect(unitStatus("api-v2", 12, state, { realMs: 1_000_000, monotonicUs: 54_000_000 })).toEqual({
      app: "api-v2",
      generation: 12,
      running: true,
      pid: 4242,
      startedAt: 998_000,
      exitCode: null,
      signal: null,
    });
  });

  it("reads a unit that failed with an exit code, and one killed by a signal", () => {
    const failed = parseSystemctlShow(
      "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nMainPID=0\nExecMainCode=1\nExecMainStatus=3\nExecMainStartTimestampMonotonic=100\nTimeoutStopUSec=10s\n",
    );
    expect(failed).toMatchObject({ activeState: "failed", mainPid: null, exitCode: 3, signal: null });
    expect(unitStatus("a", 1, failed, { realMs: 0, monotonicUs: 0 })).toMatchObject({
      running: false,
      pid: null,
      exitCode: 3,
    });
    const killed = parseSystemctlShow(
      "LoadState=loaded\nActiveState=failed\nResult=signal\nMainPID=0\nExecMainCode=2\nExecMainStatus=9\n",
    );
    expect(killed).toMatchObject({ exitCode: null, signal: "SIGKILL", result: "signal" });
  });

  it("reads a unit that systemd's stop timeout ended (recorded, systemd 252 in a booted container)", () => {
    // A container that ignored SIGTERM: at TimeoutStopSec systemd sent nspawn a second SIGTERM, nspawn
    // killed the container's init and exited 1.
    const state = parseSystemctlShow(
      "Result=timeout\nExecMainCode=1\nExecMainStatus=1\nLoadState=loaded\nActiveState=failed\nSubState=failed\n",
    );
    expect(state).toMatchObject({
      loaded: true,
      activeState: "failed",
      result: "timeout",
      exitCode: 1,
      signal: null,
    });
    expect(unitStatus("a", 1, state, { realMs: 0, monotonicUs: 0 })).toMatchObject({
      running: false,
      exitCode: 1,
      signal: null,
    });
  });

  it("reads a unit that does not exist (reset, or ended with success) as not running", () => {
    const gone = parseSystemctlShow(
      "MainPID=0\nResult=success\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nExecMainStartTimestampMonotonic=0\nExecMainCode=0\nExecMainStatus=0\nTimeoutStopUSec=1min 30s\n",
    );
    expect(gone).toMatchObject({
      loaded: false,
      mainPid: null,
      startedMonotonicUs: null,
      stopTimeoutMs: 90_000,
    });
    expect(unitStatus("a", 1, gone, { realMs: 5, monotonicUs: 5 })).toEqual({
      app: "a",
      generation: 1,
      running: false,
      pid: null,
      startedAt: null,
      exitCode: null,
      signal: null,
    });
  });
});

describe("systemd timespans", () => {
  it("parse the forms systemctl prints", () => {
    expect(parseTimespanMs("10s")).toBe(10_000);
    expect(parseTimespanMs("1min 30s")).toBe(90_000);
    expect(parseTimespanMs("500ms")).toBe(500);
    expect(parseTimespanMs("7.500000s")).toBe(7_500);
    expect(parseTimespanMs("1h 2min")).toBe(3_720_000);
    expect(parseTimespanMs("250000")).toBe(250);
    expect(parseTimespanMs("infinity")).toBeNull();
    expect(parseTimespanMs("soon")).toBeNull();
    expect(parseTimespanMs("")).toBeNull();
  });
});

describe("systemctl list-units parsing", () => {
  it("finds gild app units, with or without a status mark, and ignores others", () => {
    const output = [
      "gild-app-web-3.service          loaded    active   running gild app web generation 3",
      "● gild-app-api-v2-12.service    loaded    failed   failed  gild app api-v2 generation 12",
      "gild-app-old-1.service          not-found inactive dead    gild-app-old-1.service",
      "gild-app-helper.timer           loaded    active   waiting something else",
      "",
    ].join("\n");
    expect(parseListUnits(output)).toEqual([
      { unit: "gild-app-web-3.service", app: "web", generation: 3 },
      { unit: "gild-app-api-v2-12.service", app: "api-v2", generation: 12 },
      { unit: "gild-app-old-1.service", app: "old", generation: 1 },
    ]);
  });
});
