// Where a push's time and CPU go: one fleet, a full push and small deltas through the API with the
// time of every event the controller streams, the controller's and the agent's log lines of each
// transfer, CPU seconds of each daemon, and optionally V8 CPU profiles of both (TRACE_CPU_PROFILE=1:
// every gild process the fleet starts profiles itself, summarized per process at the end).
//   node test/dist/bench/transfer-trace.js   (TRACE_IMAGE_MIB=512 TRACE_RUNS=3 TRACE_CPU_PROFILE=1 TRACE_DELTA=0
//   TRACE_COLD=0: keep the page cache between pushes; by default it is dropped before each, as
//   pnpm bench:transfer does)
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildBusyboxRoot, createFleet, readProcessUsage, run, updateImage } from "@gild/testkit";
import { summarizeProfile } from "./cpu-profile.js";
import { coldCaches, writePayload } from "./machine.js";
import { type PushTrace, pushTraced } from "./push-client.js";

const IMAGE_MIB = Number(process.env.TRACE_IMAGE_MIB ?? 512);
const RUNS = Number(process.env.TRACE_RUNS ?? 3);
const PROFILE = process.env.TRACE_CPU_PROFILE === "1";
const profileDir = "/tmp/gild-transfer-trace-profiles";
const COLD = process.env.TRACE_COLD !== "0";
const maybeColdCaches = async () => {
  if (COLD) await coldCaches();
};

function printTrace(title: string, trace: PushTrace): void {
  process.stdout.write(`\n${title}: ${trace.totalMs.toFixed(1)} ms\n`);
  for (const e of trace.events) process.stdout.write(`  +${e.ms.toFixed(1).padStart(8)} ms  ${e.what}\n`);
}

/** Log lines written after `offset` whose msg is one of `msgs`, with their time. */
function logLines(file: string, offset: number, msgs: string[]): Array<Record<string, unknown>> {
  return readFileSync(file)
    .subarray(offset)
    .toString("utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => msgs.includes(l.msg as string));
}

const cpuOf = (pid: number | undefined) => (pid === undefined ? 0 : (readProcessUsage(pid)?.cpuSeconds ?? 0));

if (PROFILE) {
  await rm(profileDir, { recursive: true, force: true });
  await mkdir(profileDir, { recursive: true });
  // Node refuses --cpu-prof in NODE_OPTIONS, but not --import: a module that starts the profiler and
  // writes the profile at exit (inspector calls on the own thread answer synchronously, so 'exit' may
  // use them). Every gild process the fleet starts inherits it; this one started without it.
  const preload = join(profileDir, "profile-preload.mjs");
  await writeFile(
    preload,
    `import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";
const session = new Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.setSamplingInterval", { interval: 1000 });
session.post("Profiler.start");
process.on("exit", () => {
  session.post("Profiler.stop", (err, result) => {
    if (!err) writeFileSync(${JSON.stringify(profileDir)} + "/CPU." + process.pid + ".cpuprofile", JSON.stringify(result.profile));
  });
});
`,
  );
  process.env.NODE_OPTIONS = `--import ${preload}`;
}
const fleet = await createFleet({
  hosts: 1,
  poolSizeMiB: IMAGE_MIB * 3 + 2048,
  controllerPoolSizeMiB: IMAGE_MIB * 4 + 2048,
});
const host = fleet.hosts[0] as (typeof fleet.hosts)[number];
try {
  const tree = join(fleet.controllerPool, "..", "trace-tree");
  await buildBusyboxRoot(tree, { marker: "trace" });
  await writePayload(tree, IMAGE_MIB);
  await fleet.gildJson(["image", "create", "bench", "--from-dir", tree]);
  await rm(tree, { recursive: true, force: true });
  const evict = async (ref: string) => {
    const res = await fleet.gild(["image", "rm", ref, "--hosts", host.name]);
    if (res.code !== 0) throw new Error(res.stderr);
  };
  const rootfs = (v: number) => join(fleet.controllerPool, "images", "bench", String(v), "rootfs");

  for (let i = 0; i < RUNS; i++) {
    await maybeColdCaches();
    const c0 = cpuOf(fleet.controllerPid());
    const a0 = cpuOf(host.pid());
    const logOffset = statSync(fleet.controllerLogFile).size;
    const trace = await pushTraced(fleet, "bench@1", host.name);
    const c1 = cpuOf(fleet.controllerPid());
    const a1 = cpuOf(host.pid());
    const gib = trace.bytes / 1024 ** 3;
    printTrace(`full push ${i + 1} (${(trace.bytes / 1024 ** 2).toFixed(1)} MiB)`, trace);
    const sent = logLines(fleet.controllerLogFile, logOffset, ["transfer sent"])[0];
    process.stdout.write(
      `  controller CPU ${((c1 - c0) / gib).toFixed(2)} s/GiB, agent CPU (own, not its children) ${((a1 - a0) / gib).toFixed(2)} s/GiB; controller "transfer sent" ${String(sent?.ms)} ms\n`,
    );
    await evict("bench@1");
  }

  if (process.env.TRACE_DELTA === "0") throw new Error("done (TRACE_DELTA=0)");
  await pushTraced(fleet, "bench@1", host.name);
  await updateImage(
    fleet,
    "bench",
    "head -c 4000000 /dev/urandom > /patch.bin && echo patched >> /etc/os-release",
  );
  for (let i = 0; i < RUNS; i++) {
    await maybeColdCaches();
    const logOffset = statSync(fleet.controllerLogFile).size;
    const agentOffset = statSync(host.logFile).size;
    const trace = await pushTraced(fleet, "bench@2", host.name);
    printTrace(`delta push ${i + 1} (${(trace.bytes / 1024 ** 2).toFixed(1)} MiB)`, trace);
    for (const l of logLines(fleet.controllerLogFile, logOffset, ["transfer sent"]))
      process.stdout.write(`  controller: transfer sent, ${String(l.ms)} ms on the socket\n`);
    for (const l of logLines(host.logFile, agentOffset, ["command succeeded"]))
      process.stdout.write(`  agent: ${String(l.kind)} succeeded in ${String(l.ms)} ms\n`);
    await evict("bench@2");
    await maybeColdCaches();
    const rawTarget = join(host.poolPath, "raw-trace");
    await mkdir(rawTarget, { recursive: true });
    const t0 = performance.now();
    await run("sh", [
      "-c",
      `btrfs send -q --proto 2 --compressed-data -p ${rootfs(1)} ${rootfs(2)} | btrfs receive -q ${rawTarget}`,
    ]);
    process.stdout.write(`  raw incremental pipe: ${(performance.now() - t0).toFixed(1)} ms\n`);
    await run("btrfs", ["subvolume", "delete", join(rawTarget, "rootfs")]);
    await maybeColdCaches();
    const c0 = performance.now();
    const cli = await fleet.gild(["image", "push", "bench@2", "--hosts", host.name]);
    if (cli.code !== 0) throw new Error(cli.stderr);
    process.stdout.write(`  gild image push (CLI): ${(performance.now() - c0).toFixed(1)} ms\n`);
    await evict("bench@2");
  }
} finally {
  const pids = { controller: fleet.controllerPid(), agent: host.pid() };
  await fleet.destroy();
  if (PROFILE) {
    for (const [role, pid] of Object.entries(pids)) {
      const file = readdirSync(profileDir).find((f) => f.includes(`.${pid}.`));
      if (!file) {
        process.stdout.write(`\nno profile of the ${role} (pid ${pid})\n`);
        continue;
      }
      const summary = summarizeProfile(join(profileDir, file), 0, Number.POSITIVE_INFINITY, 30);
      process.stdout.write(
        `\n${role} profile ${file}: sampled ${summary.sampledMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms\n`,
      );
      for (const row of summary.topSelf)
        process.stdout.write(
          `  self ${row.ms.toFixed(0).padStart(7)} ms ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.name}\n`,
        );
    }
  }
}
