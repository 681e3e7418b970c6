import {
  abortHostUpdate,
  createHostUpdate,
  type HostCommandObservation,
  type HostUpdateFleetObservation,
  type HostUpdateHostState,
  type HostUpdateObservation,
  type HostUpdatePlanResult,
  type HostUpdateRecord,
  type HostUpdateState,
  type HostUpdateStep,
  hostUpdateCommandKey,
  hostUpdateCommandsCalledFor,
  pauseHostUpdate,
  planHostUpdate,
  type RawHostUpdateStrategy,
  resolveHostUpdateStrategy,
  resumeHostUpdate,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import { frozen, MIN, SEC, T0 } from "./rollout-fixtures.js";

const t = T0 + MIN;
const LONG_AGO = T0 - 60 * MIN;
/** The command's deadline after its start: 30 min timeout + 1 min for the report. */
const CMD_DEADLINE = 31 * MIN;
const DEADLINE = 10 * MIN;

/** A job over h1..hn: canary h1, then the rest in waves; bake 0 unless said. */
function newJob(n: number, raw: RawHostUpdateStrategy = {}): HostUpdateRecord {
  return createHostUpdate(
    {
      id: "hu1",
      argv: ["/bin/sh", "-c", "apt-get -y upgrade"],
      strategy: resolveHostUpdateStrategy({ canary: ["h1"], bake: 0, ...raw }),
      targets: Array.from({ length: n }, (_, i) => ({ hostId: `h${i + 1}`, hostName: `web-${i + 1}` })),
      active: [],
    },
    T0,
  );
}

function withHosts(job: HostUpdateRecord, patch: Record<string, Partial<HostUpdateStep>>): HostUpdateRecord {
  const out = structuredClone(job);
  for (const [id, p] of Object.entries(patch)) out.hosts[id] = { ...(out.hosts[id] as HostUpdateStep), ...p };
  return out;
}

function withJob(job: HostUpdateRecord, patch: Partial<HostUpdateRecord>): HostUpdateRecord {
  return { ...structuredClone(job), ...patch };
}

/** Online, nothing run yet, one app healthy for long. */
function hostObs(patch: Partial<HostUpdateObservation> = {}): HostUpdateObservation {
  return {
    online: true,
    command: null,
    reboot: null,
    apps: [{ name: "web", health: "healthy", healthySince: LONG_AGO }],
    ...patch,
  };
}

function fleet(
  job: HostUpdateRecord,
  patch: Record<string, Partial<HostUpdateObservation>> = {},
): HostUpdateFleetObservation {
  const hosts: Record<string, HostUpdateObservation> = {};
  for (const id of Object.keys(job.hosts)) hosts[id] = hostObs(patch[id]);
  return { hosts };
}

const exited = (exitCode: number, rebootRequired = false): HostCommandObservation => ({
  state: exitCode === 0 ? "succeeded" : "failed",
  exitCode,
  rebootRequired,
  reason: exitCode === 0 ? null : `exit code ${exitCode}: E: Unable to locate package`,
});
const running: HostCommandObservation = {
  state: "running",
  exitCode: null,
  rebootRequired: false,
  reason: null,
};
const rebooted: HostCommandObservation = {
  state: "succeeded",
  exitCode: null,
  rebootRequired: false,
  reason: null,
};

const started = (at = T0): Partial<HostUpdateStep> => ({
  state: "running-command",
  startedAt: at,
  deadlineAt: at + CMD_DEADLINE,
});
const rebooting = (at = t): Partial<HostUpdateStep> => ({
  state: "rebooting",
  startedAt: T0,
  rebootedAt: at,
  exitCode: 0,
  deadlineAt: at + DEADLINE,
});
const verifying = (at = t, rebootedAt: number | null = null): Partial<HostUpdateStep> => ({
  state: "verifying",
  startedAt: T0,
  rebootedAt,
  exitCode: 0,
  deadlineAt: at + DEADLINE,
});
const done: Partial<HostUpdateStep> = { state: "done", startedAt: T0, exitCode: 0, doneAt: T0 };

function plan(job: HostUpdateRecord, obs: HostUpdateFleetObservation, now: number): HostUpdatePlanResult {
  return planHostUpdate(frozen(structuredClone(job)), frozen(structuredClone(obs)), now);
}

const keys = (res: HostUpdatePlanResult) => res.commands.map(hostUpdateCommandKey).sort();

interface Row {
  name: string;
  job: HostUpdateRecord;
  obs: HostUpdateFleetObservation | ((job: HostUpdateRecord) => HostUpdateFleetObservation);
  now: number;
  commands: string[];
  state?: HostUpdateState;
  hosts?: Record<string, HostUpdateHostState>;
  nextWakeAt?: number | null;
  check?: (res: HostUpdatePlanResult, input: HostUpdateRecord) => void;
}

function runRows(rows: Row[]): void {
  it.each(rows.map((row) => [row.name, row] as const))("%s", (_name, row) => {
    const obs = typeof row.obs === "function" ? row.obs(row.job) : row.obs;
    const res = plan(row.job, obs, row.now);
    expect(keys(res)).toEqual([...row.commands].sort());
    if (row.state !== undefined) expect(res.job.state).toBe(row.state);
    for (const [id, state] of Object.entries(row.hosts ?? {}))
      expect([id, res.job.hosts[id]?.state]).toEqual([id, state]);
    if (row.nextWakeAt !== undefined) expect(res.nextWakeAt).toBe(row.nextWakeAt);
    // The commands are exactly what the new record calls for that the old one did not.
    const before = new Set(hostUpdateCommandsCalledFor(row.job).map(hostUpdateCommandKey));
    expect(keys(res)).toEqual(
      hostUpdateCommandsCalledFor(res.job)
        .map(hostUpdateCommandKey)
        .filter((k) => !before.has(k))
        .sort(),
    );
    // The input itself comes back exactly when nothing changed.
    if (res.job === row.job) expect(res.events).toEqual([]);
    row.check?.(res, row.job);
    // Idempotent: the same observation again sends nothing and changes nothing.
    const again = plan(res.job, obs, row.now);
    expect(again.commands).toEqual([]);
    expect(again.job).toEqual(res.job);
  });
}

// Four hosts: canary h1, then waves of 25% (h?) and the rest: waves [[h1], [x], [y, z]].
const j4 = newJob(4);
const [w1, w2] = [j4.waves[1] as string[], j4.waves[2] as string[]];
const x = w1[0] as string;
const [y, z] = w2 as [string, string];

describe("createHostUpdate", () => {
  it("puts the canary first and splits the rest as rollouts do", () => {
    expect(j4.waves[0]).toEqual(["h1"]);
    expect(j4.waves.map((w) => w.length)).toEqual([1, 1, 2]);
    expect(j4).toMatchObject({ state: "running", currentWave: 0, phase: "updating", hasCanary: true });
    expect(Object.values(j4.hosts).every((h) => h.state === "pending")).toBe(true);
  });

  it("names canaries by host name", () => {
    const job = newJob(3, { canary: "web-2" });
    expect(job.waves[0]).toEqual(["h2"]);
  });

  it("refuses a canary that is not selected, and a host that another active job covers", () => {
    expect(() => newJob(2, { canary: "web-9" })).toThrow(/not among the host update's hosts/);
    expect(() =>
      createHostUpdate(
        {
          id: "hu2",
          argv: ["true"],
          strategy: resolveHostUpdateStrategy(),
          targets: [{ hostId: "h1", hostName: "web-1" }],
          active: [{ id: "hu1", hostIds: ["h1"] }],
        },
        T0,
      ),
    ).toThrow(
      expect.objectContaining({ code: "GILD_HOST_UPDATE_ACTIVE", message: expect.stringContaining("web-1") }),
    );
  });

  it("refuses an empty selection", () => {
    expect(() =>
      createHostUpdate(
        { id: "hu2", argv: ["true"], strategy: resolveHostUpdateStrategy(), targets: [], active: [] },
        T0,
      ),
    ).toThrow(expect.objectContaining({ code: "GILD_HOST_UPDATE_NO_HOSTS" }));
  });
});

describe("planHostUpdate: one host through its steps", () => {
  runRows([
    {
      name: "a new job starts the canary's command, with the command's deadline",
      job: j4,
      obs: fleet(j4),
      now: T0,
      commands: ["h1:run"],
      hosts: { h1: "running-command", [x]: "pending" },
      nextWakeAt: T0 + CMD_DEADLINE,
      check: (res) =>
        expect(res.job.hosts.h1).toMatchObject({ startedAt: T0, deadlineAt: T0 + CMD_DEADLINE }),
    },
    {
      name: "a running command changes nothing",
      job: withHosts(j4, { h1: started() }),
      obs: fleet(j4, { h1: { command: running } }),
      now: t,
      commands: [],
      nextWakeAt: T0 + CMD_DEADLINE,
      check: (res, input) => expect(res.job).toEqual(input),
    },
    {
      name: "exit 0 without a reboot required (if-required): verifying, and done at once when apps held healthy",
      job: withHosts(j4, { h1: started() }),
      obs: fleet(j4, { h1: { command: exited(0) } }),
      now: t,
      commands: [`${x}:run`],
      hosts: { h1: "done" },
      check: (res) => expect(res.job.hosts.h1).toMatchObject({ exitCode: 0, doneAt: t, deadlineAt: null }),
    },
    {
      name: "exit 0 with a reboot required (if-required): the host reboots, with the deadline to come back",
      job: withHosts(j4, { h1: started() }),
      obs: fleet(j4, { h1: { command: exited(0, true) } }),
      now: t,
      commands: ["h1:reboot"],
      hosts: { h1: "rebooting" },
      nextWakeAt: t + DEADLINE,
      check: (res) => expect(res.job.hosts.h1).toMatchObject({ rebootedAt: t, deadlineAt: t + DEADLINE }),
    },
    {
      name: "--reboot always reboots whatever the host says",
      job: withHosts(newJob(4, { reboot: "always" }), { h1: started() }),
      obs: fleet(j4, { h1: { command: exited(0) } }),
      now: t,
      commands: ["h1:reboot"],
      hosts: { h1: "rebooting" },
    },
    {
      name: "--reboot never does not reboot a host that requires it",
      job: withHosts(newJob(4, { reboot: "never" }), { h1: started() }),
      obs: fleet(j4, { h1: { command: exited(0, true) } }),
      now: t,
      commands: [`${x}:run`],
      hosts: { h1: "done" },
    },
    {
      name: "a non-zero exit fails the host with the reason, and the job pauses: no other host starts",
      job: withHosts(j4, { h1: started() }),
      obs: fleet(j4, { h1: { command: exited(100) } }),
      now: t,
      commands: [],
      state: "paused",
      hosts: { h1: "failed", [x]: "pending" },
      nextWakeAt: null,
      check: (res) => {
        expect(res.job.hosts.h1).toMatchObject({ exitCode: 100, deadlineAt: null });
        expect(res.job.hosts.h1?.reason).toBe("command failed: exit code 100: E: Unable to locate package");
        expect(res.job).toMatchObject({ pauseCause: "host-failed", pausedAt: t });
        expect(res.job.reason).toMatch(/^canary wave failed: h1 \(command failed: .*\); nothing is undone/);
        expect(res.events.map((e) => e.kind)).toEqual(["host-state", "wave-failed", "job-state"]);
      },
    },
    {
      name: "with onFailure fail a failed command fails the job (settled: nothing in flight)",
      job: withHosts(newJob(4, { onFailure: "fail" }), { h1: started() }),
      obs: fleet(j4, { h1: { command: exited(1) } }),
      now: t,
      commands: [],
      state: "failed",
      nextWakeAt: null,
      check: (res) => expect(res.job.finishedAt).toBe(t),
    },
    {
      name: "a command that never reports fails the host at its deadline",
      job: withHosts(j4, { h1: started() }),
      obs: fleet(j4, { h1: { online: false, command: running } }),
      now: T0 + CMD_DEADLINE,
      commands: [],
      state: "paused",
      hosts: { h1: "failed" },
      check: (res) => {
        expect(res.job.hosts.h1?.reason).toBe("the command did not report within 31m (host offline)");
        expect(res.events.map((e) => e.kind)).toContain("deadline-exceeded");
      },
    },
    {
      name: "rebooting: the host is away, nothing changes before the deadline",
      job: withHosts(j4, { h1: rebooting() }),
      obs: fleet(j4, { h1: { online: false, command: exited(0, true), reboot: running } }),
      now: t + 2 * MIN,
      commands: [],
      nextWakeAt: t + DEADLINE,
      check: (res, input) => expect(res.job).toEqual(input),
    },
    {
      name: "back after the reboot with apps healthy since before it: verifying, not done",
      job: withHosts(j4, { h1: rebooting() }),
      obs: fleet(j4, { h1: { command: exited(0, true), reboot: rebooted } }),
      now: t + 2 * MIN,
      commands: [],
      hosts: { h1: "verifying" },
      nextWakeAt: t + DEADLINE,
      check: (res) => expect(res.job.hosts.h1?.deadlineAt).toBe(t + DEADLINE),
    },
    {
      name: "back after the reboot, apps healthy since after it for less than minHealthy: wakes when it is held",
      job: withHosts(j4, { h1: rebooting() }),
      obs: fleet(j4, {
        h1: {
          command: exited(0, true),
          reboot: rebooted,
          apps: [{ name: "web", health: "healthy", healthySince: t + 2 * MIN - 3 * SEC }],
        },
      }),
      now: t + 2 * MIN,
      commands: [],
      hosts: { h1: "verifying" },
      nextWakeAt: t + 2 * MIN + 7 * SEC,
    },
    {
      name: "verifying, every app healthy for minHealthy since the reboot: done, the canary wave completes",
      job: withHosts(j4, { h1: verifying(t, t) }),
      obs: fleet(j4, {
        h1: { reboot: rebooted, apps: [{ name: "web", health: "healthy", healthySince: t + MIN }] },
      }),
      now: t + 2 * MIN,
      commands: [`${x}:run`],
      hosts: { h1: "done", [x]: "running-command" },
      check: (res) => {
        expect(res.job).toMatchObject({ currentWave: 1, phase: "updating" });
        expect(res.events.map((e) => e.kind)).toEqual([
          "host-state",
          "wave-completed",
          "bake-started",
          "wave-started",
          "host-state",
        ]);
      },
    },
    {
      name: "a host with no app is done once it is back",
      job: withHosts(j4, { h1: verifying(t, t) }),
      obs: fleet(j4, { h1: { reboot: rebooted, apps: [] } }),
      now: t + MIN,
      commands: [`${x}:run`],
      hosts: { h1: "done" },
    },
    {
      name: "a reboot that failed fails the host",
      job: withHosts(j4, { h1: rebooting() }),
      obs: fleet(j4, {
        h1: { reboot: { ...running, state: "failed", reason: "GILD_COMMAND_FAILED: no systemd" } },
      }),
      now: t + MIN,
      commands: [],
      state: "paused",
      hosts: { h1: "failed" },
      check: (res) => expect(res.job.hosts.h1?.reason).toBe("reboot failed: GILD_COMMAND_FAILED: no systemd"),
    },
    {
      name: "a host that does not come back fails at the deadline",
      job: withHosts(j4, { h1: rebooting() }),
      obs: fleet(j4, { h1: { online: false, reboot: running } }),
      now: t + DEADLINE,
      commands: [],
      state: "paused",
      hosts: { h1: "failed" },
      check: (res) => expect(res.job.hosts.h1?.reason).toBe("did not come back within 10m of its reboot"),
    },
    {
      name: "an app still unhealthy at the deadline fails the host, naming the app",
      job: withHosts(j4, { h1: verifying(t, t) }),
      obs: fleet(j4, {
        h1: { reboot: rebooted, apps: [{ name: "web", health: "unhealthy", healthySince: null }] },
      }),
      now: t + DEADLINE,
      commands: [],
      state: "paused",
      hosts: { h1: "failed" },
      check: (res) => expect(res.job.hosts.h1?.reason).toBe("not healthy within 10m: app web is unhealthy"),
    },
  ]);
});

describe("planHostUpdate: waves, maxUnavailable, bakes", () => {
  const atWave2 = withJob(withHosts(j4, { h1: done, [x]: done }), { currentWave: 2 });
  runRows([
    {
      name: "maxUnavailable 1: one host of the wave at a time",
      job: atWave2,
      obs: fleet(j4),
      now: t,
      commands: [`${y}:run`],
      hosts: { [y]: "running-command", [z]: "pending" },
    },
    {
      name: "maxUnavailable 2: both hosts of the wave at once",
      job: withJob(atWave2, { strategy: resolveHostUpdateStrategy({ maxUnavailable: 2, bake: 0 }) }),
      obs: fleet(j4),
      now: t,
      commands: [`${y}:run`, `${z}:run`],
    },
    {
      name: "maxUnavailable 50% is of all the job's hosts: two",
      job: withJob(atWave2, { strategy: resolveHostUpdateStrategy({ maxUnavailable: "50%", bake: 0 }) }),
      obs: fleet(j4),
      now: t,
      commands: [`${y}:run`, `${z}:run`],
    },
    {
      name: "the next host starts when the one before it is done",
      job: withHosts(atWave2, { [y]: verifying() }),
      obs: fleet(j4),
      now: t + MIN,
      commands: [`${z}:run`],
      hosts: { [y]: "done", [z]: "running-command" },
    },
    {
      name: "the last host done: the job succeeds, no bake after the last wave",
      job: withHosts(atWave2, { [y]: done, [z]: verifying() }),
      obs: fleet(j4),
      now: t + MIN,
      commands: [],
      state: "succeeded",
      nextWakeAt: null,
      check: (res) => expect(res.job).toMatchObject({ finishedAt: t + MIN, bakeUntil: null }),
    },
    {
      name: "with a bake, a completed wave bakes before the next one starts",
      job: withHosts(withJob(j4, { strategy: resolveHostUpdateStrategy({ bake: "2m" }) }), {
        h1: verifying(),
      }),
      obs: fleet(j4),
      now: t,
      commands: [],
      state: "running",
      nextWakeAt: t + 2 * MIN,
      check: (res) =>
        expect(res.job).toMatchObject({ phase: "baking", bakeUntil: t + 2 * MIN, currentWave: 0 }),
    },
    {
      name: "the bake's end starts the next wave",
      job: withJob(withHosts(j4, { h1: done }), { phase: "baking", bakeUntil: t }),
      obs: fleet(j4),
      now: t,
      commands: [`${x}:run`],
      check: (res) => expect(res.job).toMatchObject({ phase: "updating", currentWave: 1, bakeUntil: null }),
    },
    {
      name: "an offline host whose turn came waits for the deadline to come online",
      job: atWave2,
      obs: fleet(j4, { [y]: { online: false } }),
      now: t,
      commands: [`${z}:run`],
      hosts: { [y]: "pending", [z]: "running-command" },
      check: (res) => expect(res.job.hosts[y]?.deadlineAt).toBeNull(),
    },
    {
      name: "the only host left, offline: its clock to come online starts",
      job: withHosts(atWave2, { [z]: done }),
      obs: fleet(j4, { [y]: { online: false } }),
      now: t,
      commands: [],
      hosts: { [y]: "pending" },
      nextWakeAt: t + DEADLINE,
    },
    {
      name: "an offline host past its clock fails, and the waves stop",
      job: withHosts(atWave2, { [z]: done, [y]: { deadlineAt: t } }),
      obs: fleet(j4, { [y]: { online: false } }),
      now: t,
      commands: [],
      state: "paused",
      hosts: { [y]: "failed" },
      check: (res) => expect(res.job.hosts[y]?.reason).toBe("offline for 10m when its turn came"),
    },
    {
      name: "a host that comes back before its clock runs out starts",
      job: withHosts(withHosts(atWave2, { [z]: done }), { [y]: { deadlineAt: t + MIN } }),
      obs: fleet(j4),
      now: t,
      commands: [`${y}:run`],
      check: (res) => expect(res.job.hosts[y]?.deadlineAt).toBe(t + CMD_DEADLINE),
    },
    {
      name: "a failure while another host of the wave is in flight: that host goes on, its reboot included",
      job: withHosts(
        withJob(atWave2, { strategy: resolveHostUpdateStrategy({ maxUnavailable: 2, bake: 0 }) }),
        {
          [y]: started(t),
          [z]: started(t),
        },
      ),
      obs: fleet(j4, { [y]: { command: exited(2) }, [z]: { command: exited(0, true) } }),
      now: t + MIN,
      commands: [`${z}:reboot`],
      state: "paused",
      hosts: { [y]: "failed", [z]: "rebooting" },
    },
  ]);
});

describe("planHostUpdate: pause, abort, settled jobs", () => {
  runRows([
    {
      name: "paused by the operator: no host starts",
      job: pauseHostUpdate(j4, T0),
      obs: fleet(j4),
      now: t,
      commands: [],
      hosts: { h1: "pending" },
      check: (res, input) => expect(res.job).toEqual(input),
    },
    {
      name: "paused: a host in flight still finishes its steps (the reboot its command calls for)",
      job: pauseHostUpdate(withHosts(j4, { h1: started() }), T0),
      obs: fleet(j4, { h1: { command: exited(0, true) } }),
      now: t,
      commands: ["h1:reboot"],
      state: "paused",
      hosts: { h1: "rebooting" },
    },
    {
      name: "paused: a host that fails in flight is recorded; the job stays paused",
      job: pauseHostUpdate(withHosts(j4, { h1: started() }), T0),
      obs: fleet(j4, { h1: { command: exited(1) } }),
      now: t,
      commands: [],
      state: "paused",
      hosts: { h1: "failed" },
    },
    {
      name: "aborted with a host rebooting: the job is not settled until it is back and verified",
      job: abortHostUpdate(withHosts(j4, { h1: rebooting() }), t),
      obs: fleet(j4, { h1: { online: false, reboot: running } }),
      now: t + MIN,
      commands: [],
      state: "aborted",
      nextWakeAt: t + DEADLINE,
      check: (res) => {
        expect(res.job.finishedAt).toBeNull();
        expect(hostUpdateCommandsCalledFor(res.job).map(hostUpdateCommandKey)).toEqual(["h1:reboot"]);
      },
    },
    {
      name: "aborted: the last host in flight is done: settled, finishedAt set",
      job: abortHostUpdate(withHosts(j4, { h1: verifying() }), t),
      obs: fleet(j4),
      now: t + MIN,
      commands: [],
      state: "aborted",
      hosts: { h1: "done", [x]: "pending" },
      nextWakeAt: null,
      check: (res) => {
        expect(res.job.finishedAt).toBe(t + MIN);
        expect(hostUpdateCommandsCalledFor(res.job)).toEqual([]);
      },
    },
    {
      name: "aborted with nothing in flight: settled at once, finishedAt set by the next step",
      job: abortHostUpdate(j4, t),
      obs: fleet(j4),
      now: t + MIN,
      commands: [],
      state: "aborted",
      nextWakeAt: null,
      check: (res) => expect(res.job.finishedAt).toBe(t + MIN),
    },
    {
      name: "a settled job is returned as it is",
      job: withJob(withHosts(j4, { h1: done }), { state: "succeeded", finishedAt: t }),
      obs: fleet(j4, { h1: { online: false } }),
      now: t + DEADLINE * 10,
      commands: [],
      nextWakeAt: null,
      check: (res, input) => expect(res.job).toEqual(input),
    },
  ]);
});

describe("host-update verbs", () => {
  const failed = plan(withHosts(j4, { h1: started() }), fleet(j4, { h1: { command: exited(1) } }), t).job;

  it("resume after a failure accepts the failed host and goes on", () => {
    const resumed = resumeHostUpdate(failed, t + 5 * MIN);
    expect(resumed).toMatchObject({
      state: "running",
      acceptedFailures: ["h1"],
      pauseCause: null,
      reason: null,
    });
    const res = plan(resumed, fleet(j4), t + 5 * MIN);
    expect(keys(res)).toEqual([`${x}:run`]);
    expect(res.job).toMatchObject({ state: "running", currentWave: 1 });
  });

  it("resume shifts the bake by the pause", () => {
    const baking = withJob(withHosts(j4, { h1: done }), { phase: "baking", bakeUntil: t + MIN });
    const resumed = resumeHostUpdate(pauseHostUpdate(baking, t), t + 5 * MIN);
    expect(resumed.bakeUntil).toBe(t + 6 * MIN);
  });

  it("pause of a paused job, resume of a running one, abort of an ended one are refused", () => {
    expect(() => pauseHostUpdate(failed, t)).toThrow(
      expect.objectContaining({ code: "GILD_HOST_UPDATE_STATE" }),
    );
    expect(() => resumeHostUpdate(j4, t)).toThrow(
      expect.objectContaining({ code: "GILD_HOST_UPDATE_STATE" }),
    );
    const ended = withJob(j4, { state: "failed" });
    expect(() => abortHostUpdate(ended, t)).toThrow(
      expect.objectContaining({ code: "GILD_HOST_UPDATE_STATE" }),
    );
  });

  it("verbs do not mutate their input", () => {
    const input = frozen(structuredClone(j4));
    expect(() => abortHostUpdate(resumeHostUpdate(pauseHostUpdate(input, t), t), t)).not.toThrow();
  });
});

/** A small fake fleet: run commands end as each host's behaviour says, reboots bring hosts back. */
describe("planHostUpdate: a whole job, step by step", () => {
  type Behaviour = { exit?: number; rebootRequired?: boolean; comesBack?: boolean };
  function simulate(job: HostUpdateRecord, behaviour: Record<string, Behaviour>, until = T0 + 3 * 60 * MIN) {
    const obs: Record<string, HostUpdateObservation> = {};
    for (const id of Object.keys(job.hosts)) obs[id] = hostObs();
    const sent: string[] = [];
    let now = T0;
    let record = job;
    for (let i = 0; i < 500 && now < until; i++) {
      const res = plan(record, { hosts: obs }, now);
      record = res.job;
      for (const c of res.commands) {
        sent.push(hostUpdateCommandKey(c));
        const b = behaviour[c.hostId] ?? {};
        const host = obs[c.hostId] as HostUpdateObservation;
        if (c.kind === "run") host.command = exited(b.exit ?? 0, b.rebootRequired ?? false);
        else if (b.comesBack === false) host.online = false;
        else {
          host.reboot = rebooted;
          host.apps = [{ name: "web", health: "healthy", healthySince: now + SEC }];
        }
      }
      if (res.nextWakeAt === null && res.commands.length === 0) break;
      now = res.commands.length > 0 ? now + SEC : (res.nextWakeAt ?? now);
    }
    return { record, sent };
  }

  it("two waves with reboots: every host runs once and reboots once, in wave order", () => {
    const job = newJob(4, { reboot: "always" });
    const { record, sent } = simulate(job, {});
    expect(record.state).toBe("succeeded");
    expect(sent.filter((k) => k.endsWith(":run"))).toHaveLength(4);
    expect(sent.filter((k) => k.endsWith(":reboot"))).toHaveLength(4);
    expect(sent.slice(0, 2)).toEqual(["h1:run", "h1:reboot"]);
    const order = sent.filter((k) => k.endsWith(":run")).map((k) => k.split(":")[0]);
    expect(order).toEqual(job.waves.flat());
  });

  it("a failing canary stops the waves: no other host runs anything", () => {
    const { record, sent } = simulate(newJob(4, { onFailure: "fail" }), { h1: { exit: 3 } });
    expect(record.state).toBe("failed");
    expect(sent).toEqual(["h1:run"]);
  });

  it("a host that does not come back fails at the deadline and stops the waves", () => {
    const { record, sent } = simulate(newJob(4, { reboot: "if-required" }), {
      h1: { rebootRequired: true },
      [x]: { rebootRequired: true, comesBack: false },
    });
    expect(record.state).toBe("paused");
    expect(record.hosts[x]?.reason).toMatch(/did not come back/);
    expect(sent).toEqual(["h1:run", "h1:reboot", `${x}:run`, `${x}:reboot`]);
  });
});
