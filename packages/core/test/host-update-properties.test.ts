// Whole host-update jobs over many seeded random fleets and strategies: whatever the hosts do, a job
// ends, runs the command on a host at most once and reboots it at most once (only after its command
// succeeded, and only when the strategy calls for it), starts no host while stopped or before the
// waves before it are over, and keeps at most maxUnavailable hosts in flight.
import {
  batchSize,
  createHostUpdate,
  type HostUpdateObservation,
  type HostUpdateRecord,
  hostUpdateCommandKey,
  IN_FLIGHT_HOST_STATES,
  isSettledHostUpdate,
  planHostUpdate,
  type RawHostUpdateStrategy,
  resolveHostUpdateStrategy,
  resumeHostUpdate,
} from "@gild/core";
import { describe, expect, it } from "vitest";
import { MIN, SEC, T0 } from "./rollout-fixtures.js";
import { pick, rng } from "./seeded-random.js";

interface Behaviour {
  online: boolean;
  /** What the command does: exit 0, exit 1, or never report. */
  command: "ok" | "fail" | "hang";
  rebootRequired: boolean;
  /** After a reboot: back with healthy apps, back with an unhealthy app, or never back. */
  afterReboot: "healthy" | "unhealthy" | "gone";
  apps: number;
}

function scenario(seed: number) {
  const next = rng(seed);
  const hosts = 1 + Math.floor(next() * 8);
  const strategy: RawHostUpdateStrategy = {
    canary: pick(next, [0, 1, 2]),
    waves: pick(next, [["25%", "100%"], [1, 2], ["50%"], ["100%"]] as RawHostUpdateStrategy["waves"][]),
    maxUnavailable: pick(next, [1, 2, "50%"]),
    reboot: pick(next, ["never", "if-required", "always"] as const),
    onFailure: pick(next, ["pause", "fail"] as const),
    bake: pick(next, ["0s", "30s"]),
    minHealthy: "5s",
    deadline: "3m",
    commandTimeout: "5m",
  };
  const behaviours: Record<string, Behaviour> = {};
  for (let i = 1; i <= hosts; i++) {
    behaviours[`h${i}`] = {
      online: next() < 0.95,
      command: pick(next, ["ok", "fail", "hang"] as const, [10, 1, 0.5]),
      rebootRequired: next() < 0.5,
      afterReboot: pick(next, ["healthy", "unhealthy", "gone"] as const, [10, 1, 0.5]),
      apps: pick(next, [0, 1, 2], [1, 4, 2]),
    };
  }
  return { hosts, strategy, behaviours };
}

const apps = (n: number, since: number | null): HostUpdateObservation["apps"] =>
  Array.from({ length: n }, (_, i) => ({
    name: `app${i}`,
    health: since === null ? "unhealthy" : "healthy",
    healthySince: since,
  }));

function runJob(seed: number) {
  const { hosts, strategy, behaviours } = scenario(seed);
  let job: HostUpdateRecord = createHostUpdate(
    {
      id: "hu1",
      argv: ["/bin/true"],
      strategy: resolveHostUpdateStrategy(strategy),
      targets: Array.from({ length: hosts }, (_, i) => ({ hostId: `h${i + 1}` })),
      active: [],
    },
    T0,
  );
  const obs: Record<string, HostUpdateObservation> = {};
  for (const [id, b] of Object.entries(behaviours))
    obs[id] = { online: b.online, command: null, reboot: null, apps: apps(b.apps, T0 - 60 * MIN) };
  const sent: string[] = [];
  const limit = batchSize(job.strategy.maxUnavailable, hosts);
  let now = T0;
  let resumes = 0;
  for (let step = 0; step < 2000 && !isSettledHostUpdate(job); step++) {
    const before = job;
    const res = planHostUpdate(before, { hosts: obs }, now);
    job = res.job;
    for (const command of res.commands) {
      const key = hostUpdateCommandKey(command);
      // At most one run and one reboot per host, ever.
      expect(sent, `seed ${seed}: ${key} sent twice`).not.toContain(key);
      sent.push(key);
      const host = job.hosts[command.hostId];
      const b = behaviours[command.hostId] as Behaviour;
      const o = obs[command.hostId] as HostUpdateObservation;
      if (command.kind === "run") {
        // A host starts only in a running job, after every earlier wave is over.
        expect(before.state, `seed ${seed}: ${key} while ${before.state}`).toBe("running");
        for (const earlier of job.waves.slice(0, host?.wave ?? 0).flat())
          expect(["done", "failed"], `seed ${seed}: ${key} before ${earlier} ended`).toContain(
            job.hosts[earlier]?.state,
          );
        if (b.command !== "hang")
          o.command = {
            state: b.command === "ok" ? "succeeded" : "failed",
            exitCode: b.command === "ok" ? 0 : 1,
            rebootRequired: b.rebootRequired,
            reason: b.command === "ok" ? null : "exit code 1",
          };
      } else {
        // A reboot only after the host's command succeeded, and only when the strategy calls for it.
        expect(sent, `seed ${seed}: reboot of ${command.hostId} before its run`).toContain(
          `${command.hostId}:run`,
        );
        expect(o.command?.state).toBe("succeeded");
        expect(
          job.strategy.reboot === "always" || (job.strategy.reboot === "if-required" && b.rebootRequired),
          `seed ${seed}: reboot against --reboot ${job.strategy.reboot}`,
        ).toBe(true);
        if (b.afterReboot === "gone") o.online = false;
        else {
          o.reboot = { state: "succeeded", exitCode: null, rebootRequired: false, reason: null };
          o.apps = apps(b.apps, b.afterReboot === "healthy" ? now + SEC : null);
        }
      }
    }
    // Never more than maxUnavailable hosts of a wave in flight.
    for (const wave of job.waves) {
      const inFlight = wave.filter((id) => IN_FLIGHT_HOST_STATES.includes(job.hosts[id]?.state ?? "pending"));
      expect(inFlight.length, `seed ${seed}: in flight`).toBeLessThanOrEqual(limit);
    }
    // The operator looks at a failure and resumes, a few times.
    if (job.state === "paused" && job.pauseCause === "host-failed" && resumes < 3) {
      resumes += 1;
      now += MIN;
      job = resumeHostUpdate(job, now);
      continue;
    }
    if (job.state === "paused") break;
    now = res.commands.length > 0 ? now + SEC : (res.nextWakeAt ?? now + MIN);
  }
  return { job, sent, behaviours };
}

const SEEDS = Array.from({ length: 80 }, (_, i) => i + 1);

describe("host-update jobs over seeded random fleets", () => {
  it.each(SEEDS)("seed %i: ends, and keeps every promise on the way", (seed) => {
    const { job, sent, behaviours } = runJob(seed);
    // It ends: settled, or paused after the operator stopped resuming.
    expect(isSettledHostUpdate(job) || job.state === "paused", `seed ${seed}: ${job.state}`).toBe(true);
    if (job.state === "succeeded") {
      for (const host of Object.values(job.hosts))
        expect(["done", "failed"], `seed ${seed}: ${host.hostId}`).toContain(host.state);
    }
    // A host that behaved well throughout and was started is done.
    for (const host of Object.values(job.hosts)) {
      const b = behaviours[host.hostId] as Behaviour;
      const rebooted = sent.includes(`${host.hostId}:reboot`);
      if (host.state === "failed") expect(host.reason, `seed ${seed}: ${host.hostId}`).toBeTruthy();
      if (
        b.online &&
        b.command === "ok" &&
        (!rebooted || b.afterReboot === "healthy") &&
        host.startedAt !== null
      )
        expect(host.state, `seed ${seed}: ${host.hostId}`).toBe("done");
    }
  });

  it("covers every ending across the seeds", () => {
    const endings = new Set(SEEDS.map((seed) => runJob(seed).job.state));
    expect([...endings].sort()).toEqual(expect.arrayContaining(["failed", "succeeded"]));
  });
});
