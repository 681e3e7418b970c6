// pnpm bench:switch: per-app downtime during a switch on the busybox image. A prober sends GET / every
// 10 ms; downtime is the time from the old container's last good answer to the new one's first. Median
// over 10 switches, and the time to roll back (command round trip, and its downtime). Run by hand as
// root; not a test.
import { setTimeout as delay } from "node:timers/promises";
import {
  busyboxServeShellCommand,
  createBusyboxImage,
  createFleet,
  type Fleet,
  updateImage,
} from "@gild/testkit";
import { fmt, median } from "./stats.js";

const SWITCHES = Number(process.env.BENCH_SWITCHES ?? 10);
const PORT = 8080;

interface Answer {
  at: number;
  marker: string | null;
}

/** GET / every 10 ms, recording when each good answer came and which version gave it. */
function startProber(url: string): { answers: Answer[]; stop: () => Promise<void> } {
  const answers: Answer[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(200) });
        const text = await res.text();
        answers.push({ at: Date.now(), marker: res.ok ? (/bench-v(\d+)/.exec(text)?.[0] ?? null) : null });
      } catch {
        answers.push({ at: Date.now(), marker: null });
      }
      await delay(Math.max(0, 10 - (Date.now() - started)));
    }
  })();
  return {
    answers,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Last good answer of `from` before the first good answer of `to`, after `since`. */
function downtime(answers: readonly Answer[], since: number, from: string, to: string): number {
  const window = answers.filter((a) => a.at >= since);
  const firstNew = window.findIndex((a) => a.marker === to);
  if (firstNew < 0) return Number.NaN;
  const lastOld = window
    .slice(0, firstNew)
    .reverse()
    .find((a) => a.marker === from);
  return (window[firstNew] as Answer).at - (lastOld ?? window[0] ?? { at: since }).at;
}

async function timedGild(fleet: Fleet, args: string[]): Promise<number> {
  const t0 = performance.now();
  const res = await fleet.gild(args, { timeoutMs: 120_000 });
  if (res.code !== 0) throw new Error(`gild ${args.join(" ")}: ${res.stderr}${res.stdout}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:switch needs root");
  const fleet = await createFleet({ hosts: 1 });
  try {
    await createBusyboxImage(fleet, "bench", { marker: "bench-v1" });
    await updateImage(fleet, "bench", "sed -i 's/bench-v1/bench-v2/g' /www/index.html");
    await fleet.gildJson([
      "app",
      "create",
      "bench",
      "--image",
      "bench",
      "--hosts",
      "host-1",
      "--cmd",
      busyboxServeShellCommand(PORT),
      "--health",
      `http://127.0.0.1:${PORT}/healthz`,
      "--health-interval",
      "50ms",
      "--min-healthy",
      "500ms",
    ]);
    await timedGild(fleet, ["app", "deploy", "bench", "--image", "bench@1"]);
    const host = fleet.hosts[0] as Fleet["hosts"][number];
    const prober = startProber(host.url(PORT, "/"));
    const downtimes: number[] = [];
    const switchTimes: number[] = [];
    let current = 1;
    for (let i = 0; i < SWITCHES; i++) {
      const next = current === 1 ? 2 : 1;
      const since = Date.now();
      switchTimes.push(await timedGild(fleet, ["app", "deploy", "bench", "--image", `bench@${next}`]));
      downtimes.push(downtime(prober.answers, since, `bench-v${current}`, `bench-v${next}`));
      current = next;
    }
    // Rollback: back to the previous generation, already on the host.
    const rollbackDowntimes: number[] = [];
    const rollbackTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const next = current === 1 ? 2 : 1;
      const since = Date.now();
      rollbackTimes.push(await timedGild(fleet, ["app", "rollback", "bench"]));
      rollbackDowntimes.push(downtime(prober.answers, since, `bench-v${current}`, `bench-v${next}`));
      current = next;
    }
    await prober.stop();
    const failed = prober.answers.filter((a) => a.marker === null).length;
    process.stdout.write(
      [
        "",
        `switch downtime (last good old answer -> first good new answer, probe every 10 ms), ${SWITCHES} switches:`,
        `  median ${fmt(median(downtimes), 0)} ms   max ${fmt(Math.max(...downtimes), 0)} ms   runs: ${downtimes.map((d) => fmt(d, 0)).join(" ")}   target <= 1000 ms`,
        `whole switch command (snapshot, stop, start, health gate with minHealthy 500 ms, CLI round trip):`,
        `  median ${fmt(median(switchTimes), 0)} ms`,
        `rollback (gild app rollback: previous generation, no download), 5 runs:`,
        `  downtime median ${fmt(median(rollbackDowntimes), 0)} ms   command median ${fmt(median(rollbackTimes), 0)} ms`,
        `probes: ${prober.answers.length}, failed or refused: ${failed}`,
        "",
      ].join("\n"),
    );
  } finally {
    await fleet.destroy();
  }
}

await main();
