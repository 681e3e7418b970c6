// pnpm bench:rollout: a rollout across many simulated hosts. For each N (BENCH_HOSTS, default
// "1000,10000") it starts a real controller as its own process (pool on a loopback btrfs), makes two
// image versions and an app, joins N hosts (join token + enroll each), connects N fake agents from this
// process (real protocol: Hello, Inventory, Heartbeats, CommandStatus; commands succeed after a short
// delay) and rolls the new version out in waves (canary 1, 1%, 10%, 100%; bake and minHealthy 0).
// Reports join time, rollout time, the controller's RSS and CPU, and per wave transition the time from
// the previous wave's last healthy report to the first command the transition caused (target: median
// < 100 ms, max < 250 ms); and the same on the controller's clock alone, from its stored commands and events (no load tool in it),
// with every wave's start, pulls, switches and completion on that clock.
// Run by hand as root; not a test (this machine is shared and noisy).
//
// Environment: BENCH_HOSTS="1000,10000"  BENCH_JOIN_CONCURRENCY=32  BENCH_CONNECT_CONCURRENCY=200
//   BENCH_COMMAND_DELAY_MS="50-200"  BENCH_STRATEGY='{"waves":["1%","10%","100%"],...}'
//   BENCH_TIMEOUT_MIN=180  BENCH_CPU_PROFILE=1 (node --cpu-prof on the controller; the profile is kept
//   in BENCH_PROFILE_DIR, default /tmp/gild-bench-rollout-profiles)  BENCH_JSON=<file> (raw results)
//   BENCH_KEEP_DIR=<dir> (keep the controller's SQLite database and log there, for a closer look)
//   BENCH_STORES="sqlite,postgres" (each N against each store; PostgreSQL is a temporary cluster of
//   Debian's postgresql-15 that the bench starts and removes, scripts/test-postgres.sh)
//   BENCH_CONTROLLER_NODE_ARGS="--trace-gc" (node's own flags for the controller; its output goes
//   to the controller's log, kept with BENCH_KEEP_DIR)
//   BENCH_REPEAT=3 (run every N and store that many times, in turn, and add the median of the runs to
//   the summary: at 10,000 hosts the same code measured RSS peaks 200-300 MiB apart and transition
//   medians from 0.5 to 2 s, so one run cannot tell a change from the noise)
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { basename, join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { ControllerClient, streamResult } from "@gild/api-client";
import { type RawStrategy, type RolloutRecord, TERMINAL_ROLLOUT_STATES } from "@gild/core";
import {
  createLoopBtrfs,
  FakeFleet,
  type FakeHost,
  findRepoRoot,
  gildCliPath,
  joinHostsByApi,
  openFileLimits,
  type ProcessUsage,
  readProcessUsage,
  startTestPostgres,
  type TestPostgres,
  UsageSampler,
  unmetRequirement,
} from "@gild/testkit";
import Database from "better-sqlite3";
import pg from "pg";
import { startBenchController } from "./bench-controller.js";
import { newestProfile, type ProfileSummary, summarizeProfile } from "./cpu-profile.js";
import { cpuSecondsSoFar } from "./machine.js";
import { measurePlannerCost, type PlannerCost } from "./planner-cost.js";
import {
  analyseTransitions,
  type RolloutView,
  type StoredEventRow,
  type StoredSwitchRow,
  type Transition,
  type WaveTimeline,
  waveTimelines,
} from "./rollout-analysis.js";
import { fmt, median } from "./stats.js";

const env = process.env;
const HOSTS = (env.BENCH_HOSTS ?? "1000,10000").split(",").map((s) => Number(s.trim()));
const JOIN_CONCURRENCY = Number(env.BENCH_JOIN_CONCURRENCY ?? 32);
const CONNECT_CONCURRENCY = Number(env.BENCH_CONNECT_CONCURRENCY ?? 200);
const COMMAND_DELAY_MS = (env.BENCH_COMMAND_DELAY_MS ?? "50-200").split("-").map(Number) as [number, number];
const TIMEOUT_MS = Number(env.BENCH_TIMEOUT_MIN ?? 180) * 60_000;
const CPU_PROFILE = env.BENCH_CPU_PROFILE === "1";
const PROFILE_DIR = env.BENCH_PROFILE_DIR ?? "/tmp/gild-bench-rollout-profiles";
const KEEP_DIR = env.BENCH_KEEP_DIR;
const REPEAT = Number(env.BENCH_REPEAT ?? 1);
if (!Number.isInteger(REPEAT) || REPEAT < 1)
  throw new Error(`BENCH_REPEAT: "${env.BENCH_REPEAT}" is not a whole number of runs, 1 or more`);
type BenchStore = "sqlite" | "postgres";
const STORES = (env.BENCH_STORES ?? "sqlite,postgres").split(",").map((s) => s.trim()) as BenchStore[];
for (const store of STORES)
  if (store !== "sqlite" && store !== "postgres")
    throw new Error(`BENCH_STORES: "${store}" is neither sqlite nor postgres`);
const STRATEGY: RawStrategy = env.BENCH_STRATEGY
  ? (JSON.parse(env.BENCH_STRATEGY) as RawStrategy)
  : {
      canary: 1,
      waves: ["1%", "10%", "100%"],
      promote: "auto",
      canaryBake: "0s",
      bake: "0s",
      minHealthy: "0s",
      // Generous clocks: the bench measures how fast the controller goes, not whether it times out.
      healthyDeadline: "1h",
      progressDeadline: "1h",
    };
/** The issue's target for wave transitions at 10,000 hosts: median under 100 ms, max under 250 ms. */
const TARGET_MEDIAN_MS = 100;
const TARGET_MAX_MS = 250;
const targetMet = (r: { transitionMedianMs: number; transitionMaxMs: number }) =>
  r.transitionMedianMs < TARGET_MEDIAN_MS && r.transitionMaxMs < TARGET_MAX_MS;
const TERMINAL = new Set<string>(TERMINAL_ROLLOUT_STATES);
/** Controller functions whose calls the CPU profile times one by one (each runs synchronously). */
const PROFILED_CALLS = ["evaluate", "pokeHost", "spawn"];
const LINE = "bench";
const APP = "svc";
const LABELS = { bench: "rollout" };

const MIB = 1024 * 1024;
const out = (line = "") => process.stdout.write(`${line}\n`);
const elapsed = (t0: number) => Date.now() - t0;
const seconds = (ms: number) => `${fmt(ms / 1000, 1)} s`;
const mib = (bytes: number) => `${fmt(bytes / MIB, 0)} MiB`;

interface ScaleResult {
  hosts: number;
  joinMs: number;
  tokenMsMedian: number;
  enrollMsMedian: number;
  connectMs: number;
  inventorySyncMs: number;
  startAnswerMs: number;
  rolloutMs: number;
  store: BenchStore;
  rolloutState: string;
  /** Hosts switched to the new version when the measurement ended. */
  switched: number;
  rolloutReason: string | null;
  waves: number[];
  rss: {
    afterSetup: number;
    afterJoin: number;
    connected: number;
    peakDuringRollout: number;
    vmHwm: number;
    end: number;
  };
  cpuSecondsRollout: number;
  cpuSecondsJoin: number;
  cpuSecondsConnect: number;
  maxChildren: number;
  maxFds: number;
  writeBytesRollout: number;
  writeSyscallsRollout: number;
  dbBytes: number;
  walBytes: number;
  recordBytes: number;
  events: Record<string, number>;
  commands: Record<string, number>;
  transitions: Transition[];
  /** Each wave on the controller's clock (rollout-analysis.ts, waveTimelines). */
  waveTimeline: WaveTimeline[];
  transitionMedianMs: number;
  transitionMaxMs: number;
  loadToolLagP99Ms: number;
  loadToolLagMaxMs: number;
  loadToolCpuSeconds: number;
  fleet: FakeFleet["counters"];
  profile: ProfileSummary | null;
  profileFile: string | null;
}

/** What is measured: the commit, whether packages/ differs from it, and the machine's state. */
function describeBuild(): string {
  const root = findRepoRoot();
  const git = (args: string[]) => {
    try {
      return execFileSync("git", ["-C", root, ...args], { encoding: "utf8" }).trim();
    } catch {
      return "?";
    }
  };
  const dirty =
    git(["status", "--porcelain", "--", "packages"]).length > 0 ? " + uncommitted changes in packages/" : "";
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  return `commit ${git(["rev-parse", "--short", "HEAD"])}${dirty}; node ${process.version}; ${cpus().length} CPUs, load average ${load}`;
}

/** Read the controller's store: SQL both stores answer alike (counts and sizes as numbers). */
type Query = <T>(sql: string) => Promise<T[]>;

/** The controller's store as the bench reads it, and what it costs on disk. */
interface StoreReader {
  /**
   * While the rollout runs: its state, and how many commands of each kind the controller recorded as
   * succeeded. Polled 4 times a second, so it must cost the controller little.
   */
  progress(id: string): Promise<{ state: string | undefined; succeeded: (kind: string) => number }>;
  /** Once the rollout is over: queries over everything the controller stored. */
  settled(): Promise<Query>;
  bytes(): Promise<{ db: number; wal: number }>;
  close(): Promise<void>;
}

/**
 * The controller's SQLite store. The controller holds it under an exclusive lock (store/sqlite.ts: no
 * shared memory that a full disk could turn into SIGBUS), so no other connection can read it while it
 * runs. The progress comes from its /metrics (the bench runs one rollout per controller, so the
 * rollout gauge is this rollout's), and the settled store from a copy the controller makes of itself
 * (POST /v1/backups), read in this process over a read-only connection: not the sqlite3 program,
 * whose spawns stalled the load tool's event loop for several ms, which the fake agents' timestamps
 * took in.
 */
function sqliteReader(api: ControllerClient, file: string): StoreReader {
  let copy: { db: Database.Database; path: string } | undefined;
  return {
    progress: async () => {
      const answer = await api.raw("GET", "/metrics");
      if (answer.status !== 200) throw new Error(`GET /metrics answered ${answer.status}: ${answer.text}`);
      const sample = (name: string, labels: string) =>
        Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(answer.text)?.[1] ?? 0);
      const state = TERMINAL_ROLLOUT_STATES.find((s) => sample("gild_rollouts", `state="${s}"`) > 0);
      return {
        state: state ?? "running",
        succeeded: (kind) => sample("gild_commands_total", `kind="${kind}",outcome="succeeded"`),
      };
    },
    settled: async () => {
      if (copy === undefined) {
        const made = await api.call("POST /v1/backups");
        copy = { db: new Database(made.path, { readonly: true, fileMustExist: true }), path: made.path };
      }
      const db = copy.db;
      return async <T>(sql: string) => db.prepare(sql).all() as T[];
    },
    bytes: async () => ({ db: fileSize(file), wal: fileSize(`${file}-wal`) }),
    close: async () => {
      copy?.db.close();
      if (copy) rmSync(copy.path, { force: true });
      copy = undefined;
    },
  };
}

/** BIGINT and NUMERIC (COUNT, SUM) as numbers, as better-sqlite3 gives them. */
const numericTypes = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 || oid === 1700
      ? (text: string) => Number(text)
      : pg.types.getTypeParser(oid, format as "text")) as pg.CustomTypesConfig["getTypeParser"],
};

async function postgresReader(url: string): Promise<StoreReader> {
  const client = new pg.Client({ connectionString: url, types: numericTypes });
  await client.connect();
  const query = async <T>(sql: string) => (await client.query(sql)).rows as T[];
  return {
    progress: async (id) => {
      const done = await query<{ kind: string; n: number }>(
        `SELECT kind, COUNT(*) AS n FROM commands WHERE rollout_id = '${id}' AND state = 'succeeded' GROUP BY kind`,
      );
      const row = (await query<{ state: string }>(`SELECT state FROM rollouts WHERE id = '${id}'`))[0];
      return { state: row?.state, succeeded: (kind) => done.find((d) => d.kind === kind)?.n ?? 0 };
    },
    settled: async () => query,
    bytes: async () => {
      const row = (await client.query("SELECT pg_database_size(current_database()) AS n")).rows[0] as {
        n: number;
      };
      return { db: row.n, wal: Number.NaN };
    },
    close: () => client.end(),
  };
}

/** A database of its own for one run, on the bench's PostgreSQL server. */
async function createBenchDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function makeTree(dir: string, version: number): Promise<void> {
  await mkdir(join(dir, "usr", "bin"), { recursive: true });
  await mkdir(join(dir, "etc"), { recursive: true });
  await writeFile(join(dir, "etc", "os-release"), `ID=bench\nNAME="gild bench"\nVERSION_ID=${version}\n`);
  await writeFile(join(dir, "usr", "bin", "svc"), `#!/bin/sh\n# bench service, version ${version}\n`);
}

/** Join `n` hosts: a join token and an enrollment each, `JOIN_CONCURRENCY` at a time. */
async function joinHosts(api: ControllerClient, n: number) {
  const t0 = Date.now();
  const names = Array.from({ length: n }, (_, i) => `bench-${String(i).padStart(5, "0")}`);
  const { joined, ms, tokenMs, enrollMs } = await joinHostsByApi(api, names, {
    concurrency: JOIN_CONCURRENCY,
    labels: LABELS,
    onJoined: (count) => {
      if (count % 2000 === 0) out(`  joined ${count}/${n} (${seconds(elapsed(t0))})`);
    },
  });
  return { joined, ms, tokenMsMedian: median(tokenMs), enrollMsMedian: median(enrollMs) };
}

async function waitForInventories(api: ControllerClient, n: number): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const { hosts } = await api.call("GET /v1/hosts");
    const ready = hosts.filter((h) => h.state === "online" && h.apps.length > 0).length;
    if (ready === n) return;
    if (Date.now() > deadline) throw new Error(`only ${ready} of ${n} hosts are online with an inventory`);
    await delay(1_000);
  }
}

/** A rollout read from the controller's store (not its API, which a busy controller answers late). */
async function readRolloutView(query: Query, id: string): Promise<RolloutView> {
  const row = (await query<{ record: string }>(`SELECT record FROM rollouts WHERE id = '${id}'`))[0];
  if (!row) throw new Error(`no rollout ${id} in the controller's store`);
  // The rollouts row holds the record's rest; its host steps and waves are rows of rollout_hosts.
  const rest = JSON.parse(row.record) as Omit<RolloutRecord, "hosts" | "waves"> & { waveCount: number };
  const hostRows = await query<{ host_id: string; wave: number; step: string }>(
    `SELECT host_id, wave, step FROM rollout_hosts WHERE rollout_id = '${id}' ORDER BY wave, position`,
  );
  const record: RolloutRecord = {
    ...rest,
    hosts: Object.fromEntries(hostRows.map((h) => [h.host_id, JSON.parse(h.step)])),
    waves: Array.from({ length: rest.waveCount }, (_, w) =>
      hostRows.filter((h) => h.wave === w).map((h) => h.host_id),
    ),
  };
  const names = new Map(
    (await query<{ id: string; name: string }>("SELECT id, name FROM hosts")).map((h) => [h.id, h.name]),
  );
  return {
    id: record.id,
    state: record.state,
    reason: record.reason,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    finishedAt: record.finishedAt,
    strategy: record.strategy,
    waves: record.waves.map((ids, index) => ({
      index,
      canary: record.hasCanary && index === 0,
      hosts: ids.map((hostId) => {
        const step = record.hosts[hostId];
        return {
          hostId,
          name: names.get(hostId) ?? hostId,
          state: step?.state ?? "?",
          healthyAt: step?.healthyAt ?? null,
        };
      }),
    })),
  };
}

/**
 * Wait for the rollout to reach a terminal state, watching the controller's store, or with SQLite its
 * /metrics (StoreReader.progress); resolves with the time it saw it. After BENCH_TIMEOUT_MIN the wait
 * stops and the rollout is measured as far as it got (`timedOut`). Prints progress every 10 s: what the agents did, and what the controller has
 * recorded of it (the difference is its backlog).
 */
async function waitForRollout(
  reader: StoreReader,
  id: string,
  fleet: FakeFleet,
  pid: number,
  n: number,
): Promise<{ endedAt: number; timedOut: boolean }> {
  const t0 = Date.now();
  let last = { at: t0, cpu: readProcessUsage(pid, { fds: false })?.cpuSeconds ?? 0 };
  const progress = setInterval(() => {
    void (async () => {
      const usage = readProcessUsage(pid, { fds: false });
      const busy = ((usage?.cpuSeconds ?? last.cpu) - last.cpu) / ((Date.now() - last.at) / 1000);
      last = { at: Date.now(), cpu: usage?.cpuSeconds ?? last.cpu };
      const recorded = (await reader.progress(id).catch(() => undefined))?.succeeded ?? (() => 0);
      out(
        `  ${seconds(elapsed(t0)).padStart(8)}  agents: ${fleet.pullsDone}/${n} pulls, ${fleet.deploysDone}/${n} switches done; controller recorded ${recorded("pullImage")} / ${recorded("deployApp")}; RSS ${mib(usage?.rssBytes ?? Number.NaN)}, CPU ${fmt(busy * 100, 0)}%, children ${usage?.children ?? "?"}, agent reconnects ${fleet.counters.reconnects}`,
      );
    })();
  }, 10_000);
  try {
    for (;;) {
      await delay(250);
      const { state } = await reader.progress(id);
      if (state !== undefined && TERMINAL.has(state)) return { endedAt: Date.now(), timedOut: false };
      if (elapsed(t0) > TIMEOUT_MS) {
        out(
          `  stopped waiting after ${seconds(TIMEOUT_MS)} (BENCH_TIMEOUT_MIN): measuring the rollout as far as it got`,
        );
        return { endedAt: Date.now(), timedOut: true };
      }
    }
  } finally {
    clearInterval(progress);
  }
}

async function runScale(
  n: number,
  store: BenchStore,
  postgres: TestPostgres | undefined,
  run: number,
): Promise<ScaleResult> {
  out(`\n=== N = ${n} hosts, ${store}${REPEAT > 1 ? `, run ${run} of ${REPEAT}` : ""} ===`);
  const fs = await createLoopBtrfs({ sizeMiB: 1024, label: "gild-bench" });
  const dataDir = join(fs.dir, "data");
  const profileDir = join(fs.dir, "profile");
  mkdirSync(dataDir, { recursive: true });
  let fleet: FakeFleet | undefined;
  let api: ControllerClient | undefined;
  let reader: StoreReader | undefined;
  const database =
    store === "postgres"
      ? await createBenchDatabase((postgres as TestPostgres).url, `gild_bench_${n}`)
      : undefined;
  const controller = await startBenchController({
    cli: gildCliPath(),
    dataDir,
    ...(database ? { database } : {}),
    pool: join(fs.mountPoint, "pool"),
    logFile: join(fs.dir, "controller.log"),
    ...(CPU_PROFILE ? { cpuProfileDir: profileDir } : {}),
  }).catch(async (err: unknown) => {
    await fs.destroy();
    throw err;
  });
  try {
    const pid = controller.pid;
    api = new ControllerClient(
      { url: controller.url, caPem: controller.caPem, token: controller.adminToken },
      { keepAlive: JOIN_CONCURRENCY * 2 },
    );
    out(`controller pid ${pid} at ${controller.url}; data ${dataDir}`);

    // Two versions of the line: bench@1 every host runs, bench@2 the rollout ships (an incremental).
    for (const version of [1, 2]) {
      const tree = join(fs.dir, `tree-${version}`);
      await makeTree(tree, version);
      await streamResult(
        api.stream("POST /v1/images", { body: { line: LINE, source: { kind: "dir", path: tree } } }),
      );
    }
    const { images } = await api.call("GET /v1/images", { query: { line: LINE } });
    const startUuid = images.find((i) => i.version === 1)?.uuid;
    if (!startUuid || !images.some((i) => i.version === 2))
      throw new Error(`expected ${LINE}@1 and @2 on the controller, got ${JSON.stringify(images)}`);
    await api.call("POST /v1/apps", {
      body: { name: APP, image: LINE, hosts: [`bench=${LABELS.bench}`], command: ["/usr/bin/svc"] },
    });
    const afterSetup = readProcessUsage(pid) as ProcessUsage;

    out(`joining ${n} hosts (${JOIN_CONCURRENCY} at a time) ...`);
    const join1 = await joinHosts(api, n);
    const afterJoin = readProcessUsage(pid) as ProcessUsage;
    out(
      `  joined ${n} hosts in ${seconds(join1.ms)} (${fmt(n / (join1.ms / 1000), 0)} hosts/s; median token ${fmt(join1.tokenMsMedian, 1)} ms, enroll ${fmt(join1.enrollMsMedian, 1)} ms)`,
    );

    fleet = new FakeFleet({
      controllerUrl: controller.url,
      caPem: controller.caPem,
      joined: join1.joined,
      startUuid,
      line: LINE,
      startVersion: 1,
      app: APP,
      labels: LABELS,
      commandDelayMs: COMMAND_DELAY_MS,
    });
    out(`connecting ${n} fake agents (${CONNECT_CONCURRENCY} handshakes at a time) ...`);
    let t0 = Date.now();
    await fleet.connectAll(CONNECT_CONCURRENCY, (w) => out(`  welcomed ${w}/${n} (${seconds(elapsed(t0))})`));
    const connectMs = elapsed(t0);
    t0 = Date.now();
    await waitForInventories(api, n);
    const inventorySyncMs = elapsed(t0);
    await delay(2_000);
    const connected = readProcessUsage(pid) as ProcessUsage;
    out(
      `  ${n} agents connected in ${seconds(connectMs)}, inventories stored ${seconds(inventorySyncMs)} later; controller RSS ${mib(connected.rssBytes)}`,
    );

    // The rollout, measured.
    const sampler = new UsageSampler(pid, 250);
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const loadCpu0 = cpuSecondsSoFar();
    const rolloutStart = Date.now();
    out(`rolling out ${LINE}@2 with ${JSON.stringify(STRATEGY)} ...`);
    const started = await api.call("POST /v1/rollouts", { body: { image: `${LINE}@2`, strategy: STRATEGY } });
    const startAnswerMs = elapsed(rolloutStart);
    reader = database ? await postgresReader(database) : sqliteReader(api, join(dataDir, "gild.db"));
    const { endedAt: rolloutEnd, timedOut } = await waitForRollout(reader, started.id, fleet, pid, n);
    lag.disable();
    const loadToolCpuSeconds = cpuSecondsSoFar() - loadCpu0;
    const end = sampler.stop() as ProcessUsage;
    // After the measured span: with SQLite this has the controller copy its store (sqliteReader).
    const query = await reader.settled();
    const view = await readRolloutView(query, started.id);
    const begin = sampler.samples[0] as ProcessUsage;
    const rolloutMs = (view.finishedAt ?? rolloutEnd) - view.createdAt;
    const switched = fleet.deploysDone;
    out(
      `  rollout ${view.id} ${view.state} in ${seconds(rolloutMs)}${view.reason ? `: ${view.reason}` : ""}; waves ${view.waves.map((w) => w.hosts.length).join(" + ")}`,
    );

    // What the controller stored.
    let events: StoredEventRow[] = [];
    let switchRows: StoredSwitchRow[] = [];
    const pullRows: StoredSwitchRow[] = [];
    const pullsIssuedAt = new Map<string, number>();
    const eventCounts: Record<string, number> = {};
    const commandCounts: Record<string, number> = {};
    let recordBytes = Number.NaN;
    try {
      events = await query<StoredEventRow>(
        `SELECT at, kind, wave, message FROM rollout_events WHERE rollout_id = '${view.id}' AND kind IN ('wave-started', 'wave-completed', 'bake-started', 'rollout-state') ORDER BY id`,
      );
      switchRows = await query<StoredSwitchRow>(
        `SELECT host_id AS "hostId", state, created_at AS "createdAt", updated_at AS "updatedAt" FROM commands
           WHERE rollout_id = '${view.id}' AND kind = 'deployApp'`,
      );
      for (const row of await query<StoredSwitchRow & { id: string }>(
        `SELECT id, host_id AS "hostId", state, created_at AS "createdAt", updated_at AS "updatedAt" FROM commands
           WHERE rollout_id = '${view.id}' AND kind = 'pullImage'`,
      )) {
        const pull = { ...row, createdAt: Number(row.createdAt), updatedAt: Number(row.updatedAt) };
        pullsIssuedAt.set(row.id, pull.createdAt);
        pullRows.push(pull);
      }
      for (const row of await query<{ kind: string; n: number }>(
        `SELECT kind, COUNT(*) AS n FROM rollout_events WHERE rollout_id = '${view.id}' GROUP BY kind`,
      ))
        eventCounts[row.kind] = row.n;
      for (const row of await query<{ kind: string; state: string; n: number }>(
        `SELECT kind, state, COUNT(*) AS n FROM commands WHERE rollout_id = '${view.id}' GROUP BY kind, state`,
      ))
        commandCounts[`${row.kind} ${row.state}`] = row.n;
      recordBytes =
        (
          await query<{ n: number }>(
            `SELECT length(record) + (SELECT COALESCE(SUM(length(step)), 0) FROM rollout_hosts
               WHERE rollout_id = '${view.id}') AS n FROM rollouts WHERE id = '${view.id}'`,
          )
        )[0]?.n ?? Number.NaN;
    } catch (err) {
      out(`  (no controller-side event timing: ${(err as Error).message})`);
    }

    const storeBytes = await reader.bytes();
    const hostsByName = new Map<string, FakeHost>(fleet.hosts.map((h) => [h.name, h]));
    const transitions = analyseTransitions(view, hostsByName, events, rolloutEnd, switchRows, pullsIssuedAt);
    const latencies = transitions.map((t) => t.firstCommandMs);

    let profile: ProfileSummary | null = null;
    let profileFile: string | null = null;
    // Stop the controller before the fleet, so it does not record 10,000 disconnects.
    fleet.quiesce();
    // A busy controller handles SIGTERM only after its backlog; the profile is written only on exit.
    await controller.stop(CPU_PROFILE ? 20 * 60_000 : 60_000);
    if (CPU_PROFILE) {
      const file = newestProfile(profileDir);
      if (file) {
        mkdirSync(PROFILE_DIR, { recursive: true });
        profileFile = join(PROFILE_DIR, `controller-${n}-hosts-${basename(file)}`);
        renameSync(file, profileFile);
        profile = summarizeProfile(
          profileFile,
          rolloutStart - controller.spawnedAt,
          rolloutEnd - controller.spawnedAt,
          25,
          PROFILED_CALLS,
        );
      }
    }
    return {
      hosts: n,
      store,
      joinMs: join1.ms,
      tokenMsMedian: join1.tokenMsMedian,
      enrollMsMedian: join1.enrollMsMedian,
      connectMs,
      inventorySyncMs,
      startAnswerMs,
      rolloutMs,
      rolloutState: timedOut ? `${view.state}, unfinished at the time limit` : view.state,
      switched,
      rolloutReason: view.reason,
      waves: view.waves.map((w) => w.hosts.length),
      rss: {
        afterSetup: afterSetup.rssBytes,
        afterJoin: afterJoin.rssBytes,
        connected: connected.rssBytes,
        peakDuringRollout: sampler.max("rssBytes"),
        vmHwm: end.peakRssBytes,
        end: end.rssBytes,
      },
      cpuSecondsRollout: end.cpuSeconds - begin.cpuSeconds,
      cpuSecondsJoin: afterJoin.cpuSeconds - afterSetup.cpuSeconds,
      cpuSecondsConnect: connected.cpuSeconds - afterJoin.cpuSeconds,
      maxChildren: sampler.max("children"),
      maxFds: sampler.max("openFds"),
      writeBytesRollout: end.writeBytes - begin.writeBytes,
      writeSyscallsRollout: end.writeSyscalls - begin.writeSyscalls,
      dbBytes: storeBytes.db,
      walBytes: storeBytes.wal,
      recordBytes,
      events: eventCounts,
      commands: commandCounts,
      transitions,
      waveTimeline: waveTimelines(view, events, pullRows, switchRows),
      transitionMedianMs: median(latencies),
      transitionMaxMs: latencies.length > 0 ? Math.max(...latencies) : Number.NaN,
      loadToolLagP99Ms: lag.percentile(99) / 1e6,
      loadToolLagMaxMs: lag.max / 1e6,
      loadToolCpuSeconds,
      fleet: fleet.counters,
      profile,
      profileFile,
    };
  } catch (err) {
    out(`controller log ends with:\n${controller.logTail()}`);
    throw err;
  } finally {
    fleet?.quiesce();
    await controller.stop(30_000);
    if (KEEP_DIR) {
      const kept = join(KEEP_DIR, REPEAT > 1 ? `n${n}-${store}-run${run}` : `n${n}`);
      mkdirSync(kept, { recursive: true });
      for (const file of ["gild.db", "gild.db-wal", "gild.db-shm"])
        if (existsSync(join(dataDir, file))) copyFileSync(join(dataDir, file), join(kept, file));
      copyFileSync(controller.logFile, join(kept, "controller.log"));
      out(`kept the controller's database and log in ${kept}`);
    }
    fleet?.close();
    api?.close();
    await reader?.close();
    await fs.destroy();
  }
}

function printResult(r: ScaleResult, planner: PlannerCost | undefined): void {
  out(`\n--- N = ${r.hosts}, ${r.store}: results ---`);
  out(
    `rollout: ${r.rolloutState}${r.rolloutReason ? ` (${r.rolloutReason})` : ""}, waves ${r.waves.join(" + ")}`,
  );
  out(
    `join: ${seconds(r.joinMs)} for ${r.hosts} hosts (median POST /v1/tokens ${fmt(r.tokenMsMedian, 1)} ms, POST /v1/enroll ${fmt(r.enrollMsMedian, 1)} ms, ${JOIN_CONCURRENCY} in flight); controller CPU ${fmt(r.cpuSecondsJoin, 1)} s`,
  );
  out(
    `connect: ${seconds(r.connectMs)} for ${r.hosts} WebSockets, inventories stored ${seconds(r.inventorySyncMs)} later; controller CPU ${fmt(r.cpuSecondsConnect, 1)} s`,
  );
  out(
    `rollout: ${seconds(r.rolloutMs)}, ${r.switched} of ${r.hosts} hosts switched (POST /v1/rollouts answered in ${fmt(r.startAnswerMs, 0)} ms)`,
  );
  out(
    `controller RSS: after setup ${mib(r.rss.afterSetup)}, after join ${mib(r.rss.afterJoin)}, ${r.hosts} connected ${mib(r.rss.connected)} (${fmt((r.rss.connected - r.rss.afterJoin) / r.hosts / 1024, 1)} KiB per connection), peak during rollout ${mib(r.rss.peakDuringRollout)}, VmHWM ${mib(r.rss.vmHwm)}, at the end ${mib(r.rss.end)}`,
  );
  out(
    `controller CPU during the rollout: ${fmt(r.cpuSecondsRollout, 1)} s (${fmt((r.cpuSecondsRollout / (r.rolloutMs / 1000)) * 100, 0)}% of one core); max child processes ${r.maxChildren}, max open fds ${r.maxFds}`,
  );
  out(
    `controller writes during the rollout: ${mib(r.writeBytesRollout)} to storage in ${r.writeSyscallsRollout} write calls; gild.db ${mib(r.dbBytes)}, WAL ${mib(r.walBytes)}; rollout record ${fmt(r.recordBytes / 1024, 0)} KiB of JSON`,
  );
  out(`rollout events stored: ${JSON.stringify(r.events)}`);
  out(`rollout commands stored: ${JSON.stringify(r.commands)}`);
  out(
    `fake agents: ${r.fleet.framesIn} frames in, ${r.fleet.framesOut} out; commands ${JSON.stringify(r.fleet.commands)}; replays ${r.fleet.replays}; unexpected closes ${r.fleet.unexpectedCloses}; errors ${r.fleet.errors}${r.fleet.lastError ? ` (last: ${r.fleet.lastError})` : ""}; deploys before the image ${r.fleet.deploysWithoutImage}`,
  );
  out(
    `load tool: CPU ${fmt(r.loadToolCpuSeconds, 1)} s during the rollout; its event-loop lag p99 ${fmt(r.loadToolLagP99Ms, 1)} ms, max ${fmt(r.loadToolLagMaxMs, 1)} ms (an upper bound on how late it timestamps a command)`,
  );
  out("wave transitions (ms from the last healthy report of wave k, or its bake's end):");
  out(
    "  k -> k+1   hosts        first command   first switch   last switch   controller's wave-started   prefetched at trigger",
  );
  for (const t of r.transitions) {
    out(
      `  ${`${t.from} -> ${t.to}`.padEnd(9)}  ${`${t.fromHosts} -> ${t.toHosts}`.padEnd(12)} ${`${t.censored ? ">" : ""}${fmt(t.firstCommandMs, 1)}`.padStart(13)}  ${fmt(t.firstSwitchMs, 1).padStart(13)}  ${fmt(t.lastSwitchMs, 1).padStart(12)}  ${fmt(t.decisionMs, 1).padStart(26)}  ${`${t.prefetchedAtTrigger}/${t.toHosts}`.padStart(22)}`,
    );
  }
  out(
    "the same transitions on the controller's clock alone (ms from the last switch result of wave k it recorded):",
  );
  out("  k -> k+1   wave-started   first switch issued");
  for (const t of r.transitions)
    out(
      `  ${`${t.from} -> ${t.to}`.padEnd(9)}  ${fmt(t.controllerDecisionMs, 1).padStart(12)}  ${fmt(t.controllerFirstSwitchMs, 1).padStart(20)}`,
    );
  out(
    "each wave on the controller's clock (ms from the rollout's start; issued: first-last; done: results stored, median / last):",
  );
  out(
    "  wave   hosts   started   pulls issued    pulls done      switches issued   switches done   completed",
  );
  const span = (x: { first: number; last: number } | null) =>
    x ? `${fmt(x.first, 0)}-${fmt(x.last, 0)}` : "-";
  const done = (x: { median: number; last: number } | null) =>
    x ? `${fmt(x.median, 0)} / ${fmt(x.last, 0)}` : "-";
  for (const w of r.waveTimeline)
    out(
      `  ${String(w.wave).padEnd(5)}  ${String(w.hosts).padStart(5)}  ${(w.startedMs === null ? "-" : fmt(w.startedMs, 0)).padStart(8)}   ${span(w.pullsIssued).padEnd(14)}  ${done(w.pullsDone).padEnd(14)}  ${span(w.switchesIssued).padEnd(16)}  ${done(w.switchesDone).padEnd(14)}  ${(w.completedMs === null ? "-" : fmt(w.completedMs, 0)).padStart(9)}`,
    );
  const bound = r.transitions.some((t) => t.censored)
    ? ' (">": no command had arrived by the end; a lower bound)'
    : "";
  out(
    `transition latency: median ${fmt(r.transitionMedianMs, 1)} ms, max ${fmt(r.transitionMaxMs, 1)} ms${bound}; target median < ${TARGET_MEDIAN_MS} ms, max < ${TARGET_MAX_MS} ms: ${targetMet(r) ? "MET" : "NOT MET"}`,
  );
  if (planner) {
    out(
      `pure planner at ${planner.hosts} hosts (this process): one step that changes nothing ${fmt(planner.idleStepMs, 1)} ms; the transition step ${fmt(planner.transitionStepMs, 1)} ms (${planner.transitionCommands} commands, ${planner.transitionEvents} events); record ${fmt(planner.recordBytes / 1024, 0)} KiB, JSON.stringify ${fmt(planner.stringifyMs, 1)} ms, JSON.parse ${fmt(planner.parseMs, 1)} ms`,
    );
  }
  if (r.profile) {
    out(
      `controller CPU profile over the rollout (${r.profileFile}): ${seconds(r.profile.sampledMs)} sampled, ${seconds(r.profile.idleMs)} idle`,
    );
    for (const c of r.profile.runs)
      out(
        `  ${c.name}: ${c.runs} calls seen, median ${fmt(c.medianMs, 1)} ms, p90 ${fmt(c.p90Ms, 1)} ms, max ${fmt(c.maxMs, 1)} ms, ${seconds(c.totalMs)} in all`,
      );
    out("  inclusive (top):");
    for (const row of r.profile.topInclusive)
      out(`    ${fmt(row.ms / 1000, 2).padStart(8)} s  ${fmt(row.share * 100, 1).padStart(5)}%  ${row.name}`);
    out("  self (top):");
    for (const row of r.profile.topSelf)
      out(`    ${fmt(row.ms / 1000, 2).padStart(8)} s  ${fmt(row.share * 100, 1).padStart(5)}%  ${row.name}`);
  }
}

async function main(): Promise<void> {
  const unmet = unmetRequirement([
    "root",
    "btrfs",
    ...(STORES.includes("postgres") ? (["postgres"] as const) : []),
  ]);
  if (unmet) throw new Error(`bench:rollout ${unmet}`);
  const needed = Math.max(...HOSTS) + 512;
  // Node.js raises its soft limit to the hard one at start; the controller it spawns inherits both.
  const limit = openFileLimits().soft;
  if (limit < needed) {
    throw new Error(
      `N=${Math.max(...HOSTS)} needs about ${needed} open files in this process and in the controller; the limit is ${limit}. Raise it first: ulimit -n ${needed} (or run under prlimit --nofile=${needed}:${needed})`,
    );
  }
  const build = describeBuild();
  out(`measuring ${build}`);
  const results: ScaleResult[] = [];
  const planners = new Map<number, PlannerCost>();
  for (const n of HOSTS) planners.set(n, measurePlannerCost(n, STRATEGY));
  // One PostgreSQL server for the whole run (a temporary cluster, as test/run starts), a database per N.
  const postgres = STORES.includes("postgres") ? startTestPostgres() : undefined;
  try {
    // Runs of one N and store are spread over the whole bench, not back to back: a slow spell of this
    // shared machine then weighs on every configuration alike.
    for (let run = 1; run <= REPEAT; run++)
      for (const n of HOSTS)
        for (const store of STORES) {
          const result = await runScale(n, store, postgres, run);
          results.push(result);
          printResult(result, planners.get(n));
        }
  } finally {
    postgres?.destroy();
  }
  if (env.BENCH_JSON)
    writeFileSync(
      env.BENCH_JSON,
      `${JSON.stringify({ results, planners: [...planners.values()] }, null, 2)}\n`,
    );

  out(`\n=== summary (${build}) ===`);
  out(
    "hosts    store     join      rollout    RSS peak / end        CPU s   transition median / max   target median < 100, max < 250 ms",
  );
  for (const r of results) {
    const unfinished =
      r.rolloutState === "succeeded"
        ? ""
        : ` (rollout ${r.rolloutState}; ${r.switched}/${r.hosts} switched, ${r.transitions.length} transitions measured)`;
    out(
      summaryRow(
        r,
        r.transitions.some((t) => t.censored),
      ) + unfinished,
    );
  }
  if (REPEAT === 1) return;
  out(`\nmedian of ${REPEAT} runs (each column on its own; a run whose rollout did not succeed counts too)`);
  for (const n of HOSTS)
    for (const store of STORES) {
      const runs = results.filter((r) => r.hosts === n && r.store === store);
      const m = (pick: (r: ScaleResult) => number) => median(runs.map(pick));
      const medianRun = {
        hosts: n,
        store,
        joinMs: m((r) => r.joinMs),
        rolloutMs: m((r) => r.rolloutMs),
        rss: { vmHwm: m((r) => r.rss.vmHwm), end: m((r) => r.rss.end) },
        cpuSecondsRollout: m((r) => r.cpuSecondsRollout),
        transitionMedianMs: m((r) => r.transitionMedianMs),
        transitionMaxMs: m((r) => r.transitionMaxMs),
      };
      out(summaryRow(medianRun, false));
      const peaks = runs.map((r) => mib(r.rss.vmHwm)).join(", ");
      const medians = runs.map((r) => fmt(r.transitionMedianMs, 0)).join(", ");
      out(`${"".padEnd(19)}runs: RSS peak ${peaks}; transition median ${medians} ms`);
    }
}

/** One line of the summary table: a run, or the medians of the runs of one size and store. */
function summaryRow(
  r: Pick<
    ScaleResult,
    | "hosts"
    | "store"
    | "joinMs"
    | "rolloutMs"
    | "cpuSecondsRollout"
    | "transitionMedianMs"
    | "transitionMaxMs"
  > & { rss: Pick<ScaleResult["rss"], "vmHwm" | "end"> },
  censored: boolean,
): string {
  const rss = `${mib(r.rss.vmHwm)} / ${mib(r.rss.end)}`;
  const transition = `${fmt(r.transitionMedianMs, 1)} / ${censored ? ">" : ""}${fmt(r.transitionMaxMs, 1)} ms`;
  return `${String(r.hosts).padEnd(8)} ${r.store.padEnd(9)} ${seconds(r.joinMs).padEnd(9)} ${seconds(r.rolloutMs).padEnd(10)} ${rss.padEnd(21)} ${fmt(r.cpuSecondsRollout, 1).padStart(6)}   ${transition.padEnd(25)} ${targetMet(r) ? "met" : "NOT met"}`;
}

await main();
