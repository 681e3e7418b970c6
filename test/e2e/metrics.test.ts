// The controller's /metrics after real work, and an agent started with --metrics-listen, which serves Prometheus metrics of what it did: the pull of an
// image, the switch of an app, its health; promtool accepts the text.
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openControllerRequest, readBody } from "@gild/api-client";
import {
  createBusyboxApp,
  createBusyboxImage,
  createFleet,
  deployApp,
  type Fleet,
  run,
  waitFor,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

const PORT = 8080;
const METRICS_PORT = 9469;

/** The value of one sample line ("name{labels} value"), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describeWith(
  ["root", "btrfs", "nspawn", "netns", "busybox", "promtool"],
  "metrics of a working fleet",
  () => {
    let fleet: Fleet;

    beforeAll(async () => {
      // On the host's own address, so this process (outside the namespace) can scrape it.
      fleet = await createFleet({ hosts: 1, agentArgs: ["--metrics-listen", `0.0.0.0:${METRICS_PORT}`] });
      await createBusyboxImage(fleet, "web", { marker: "metrics v1" });
    });

    afterAll(async () => {
      await fleet?.destroy();
    });

    const scrape = async (): Promise<string> => {
      const host = fleet.hosts[0];
      const res = await fetch(`http://${host?.address}:${METRICS_PORT}/metrics`, {
        signal: AbortSignal.timeout(5_000),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      return res.text();
    };

    it("counts the pull, the switch and the app's health, and promtool accepts them", async () => {
      const host = fleet.hosts[0]?.name as string;
      await createBusyboxApp(fleet, { app: "site", hosts: host, port: PORT });
      await deployApp(fleet, "site", "web@1");
      const text = await waitFor(
        async () => {
          const t = await scrape();
          return sample(t, 'gild_agent_app_healthy{app="site"}') === 1 ? t : undefined;
        },
        { timeoutMs: 30_000, what: "the agent's metrics to show a healthy app" },
      );
      expect(sample(text, 'gild_agent_commands_total{kind="pullImage",outcome="succeeded"}')).toBe(1);
      expect(sample(text, "gild_agent_transfer_bytes_total")).toBeGreaterThan(0);
      expect(sample(text, 'gild_agent_switches_total{outcome="switched"}')).toBe(1);
      expect(sample(text, 'gild_agent_command_duration_seconds_count{kind="deployApp"}')).toBe(1);
      const file = join(fleet.dir, "agent-metrics.txt");
      await writeFile(file, text);
      // promtool exits non-zero on any problem (run throws with its output) and prints nothing when clean.
      const checked = await run("sh", ["-c", `promtool check metrics < "${file}"`]);
      expect(`${checked.stdout}${checked.stderr}`.trim()).toBe("");
    });

    it("the controller's metrics count what it sent and the commands that ended", async () => {
      const trust = { caPem: readFileSync(join(fleet.controllerDataDir, "tls", "ca.pem"), "utf8") };
      const scrapeToken = readFileSync(join(fleet.controllerDataDir, "metrics.token"), "utf8").trim();
      const res = await openControllerRequest("GET", `${fleet.controllerUrl}/metrics`, undefined, trust, {
        authorization: `Bearer ${scrapeToken}`,
      });
      expect(res.statusCode).toBe(200);
      const text = await readBody(res);
      expect(sample(text, 'gild_artifact_sent_bytes_total{line="web"}')).toBeGreaterThan(0);
      expect(sample(text, 'gild_commands_total{kind="pullImage",outcome="succeeded"}')).toBe(1);
      expect(sample(text, 'gild_commands_total{kind="deployApp",outcome="succeeded"}')).toBe(1);
      expect(sample(text, 'gild_hosts{state="online"}')).toBe(1);
      expect(sample(text, "gild_agent_sessions")).toBe(1);
      const file = join(fleet.dir, "controller-metrics.txt");
      await writeFile(file, text);
      const checked = await run("sh", ["-c", `promtool check metrics < "${file}"`]);
      expect(`${checked.stdout}${checked.stderr}`.trim()).toBe("");
    });

    it("a probe that starts failing, and passes again, shows in the health series", async () => {
      // The generation's own copy of the page the probe reads: without it busybox httpd answers 404.
      const pool = fleet.hosts[0]?.poolPath as string;
      const found = await run("find", [join(pool, "apps", "site"), "-path", "*/www/healthz"]);
      const healthz = found.stdout.trim().split("\n")[0] as string;
      expect(healthz).toMatch(/healthz$/);
      await rm(healthz);
      const sick = await waitFor(
        async () => {
          const t = await scrape();
          return sample(t, 'gild_agent_app_healthy{app="site"}') === 0 ? t : undefined;
        },
        { timeoutMs: 30_000, what: "the app to show unhealthy" },
      );
      expect(sample(sick, 'gild_agent_health_changes_total{app="site",health="unhealthy"}')).toBe(1);
      await writeFile(healthz, "ok\n");
      const well = await waitFor(
        async () => {
          const t = await scrape();
          return sample(t, 'gild_agent_app_healthy{app="site"}') === 1 ? t : undefined;
        },
        { timeoutMs: 30_000, what: "the app to show healthy again" },
      );
      expect(sample(well, 'gild_agent_health_changes_total{app="site",health="healthy"}')).toBe(1);
    });

    it("answers only GET /metrics", async () => {
      const host = fleet.hosts[0];
      const res = await fetch(`http://${host?.address}:${METRICS_PORT}/v1/anything`, {
        signal: AbortSignal.timeout(5_000),
      });
      expect(res.status).toBe(404);
    });
  },
);
