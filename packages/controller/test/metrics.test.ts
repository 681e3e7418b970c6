import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTestApp, type TestApp } from "./support.js";

const run = promisify(execFile);

/** The value of one sample line ("name{labels} value"), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  let c: TestApp;
  const get = (token?: string, url = "/metrics") =>
    c.controller.app.inject({
      method: "GET",
      url,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  beforeAll(async () => {
    c = await buildTestApp();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("answers the admin token and the scrape token, and nobody else", async () => {
    expect((await get(c.adminToken)).statusCode).toBe(200);
    const scraped = await get(c.metricsToken);
    expect(scraped.statusCode).toBe(200);
    expect(scraped.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect((await get()).statusCode).toBe(401);
    expect((await get("gmet_wrong")).statusCode).toBe(401);
  });

  it("the scrape token opens nothing else", async () => {
    for (const url of ["/v1/hosts", "/v1/audit", "/v1/images"]) {
      const res = await get(c.metricsToken, url);
      expect(res.statusCode, url).toBe(401);
    }
    const res = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { authorization: `Bearer ${c.metricsToken}` },
      payload: {},
    });
    expect(res.statusCode).toBe(401);
  });

  it("counts what the store holds and how long its transactions take", async () => {
    const before = (await get(c.metricsToken)).body;
    expect(sample(before, 'gild_hosts{state="online"}')).toBe(0);
    expect(sample(before, "gild_agent_sessions")).toBe(0);
    // A join token is a write in a transaction: the write histogram moves.
    const writesBefore = sample(before, "gild_db_transaction_seconds_count") ?? 0;
    const token = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { authorization: `Bearer ${c.adminToken}` },
      payload: {},
    });
    expect(token.statusCode).toBe(200);
    c.controller.services.store.transaction(() => undefined);
    const after = (await get(c.metricsToken)).body;
    expect(sample(after, "gild_db_transaction_seconds_count")).toBeGreaterThan(writesBefore);
    expect(sample(after, "gild_controller_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
  });

  it("measures a wave from its start to its end, and bytes sent per line", async () => {
    const metrics = c.controller.services.metrics;
    metrics.jobEvents("rollout", "r1", [{ at: 1_000, kind: "wave-started", wave: 0, message: "" }]);
    metrics.jobEvents("rollout", "r1", [{ at: 91_000, kind: "wave-completed", wave: 0, message: "" }]);
    // A wave whose start this controller never saw (it started before a restart) is not measured.
    metrics.jobEvents("rollout", "r1", [{ at: 95_000, kind: "wave-failed", wave: 1, message: "" }]);
    metrics.artifactBytesSent("php", 4096);
    const text = (await get(c.metricsToken)).body;
    expect(sample(text, 'gild_wave_duration_seconds_sum{job="rollout",outcome="completed"}')).toBe(90);
    expect(sample(text, 'gild_wave_duration_seconds_count{job="rollout",outcome="completed"}')).toBe(1);
    expect(text).not.toContain('outcome="failed"');
    expect(sample(text, 'gild_artifact_sent_bytes_total{line="php"}')).toBe(4096);
  });

  describeWith(["promtool"], "checked by Prometheus's own tool", () => {
    it("passes promtool check metrics, with every kind of series filled", async () => {
      const text = (await get(c.metricsToken)).body;
      const file = join(c.config.dataDir, "metrics.txt");
      await writeFile(file, text);
      // promtool reads the exposition on stdin and exits non-zero on any problem (lint included).
      const { stdout, stderr } = await run("sh", ["-c", `promtool check metrics < "${file}"`]).catch(
        (err: { stdout: string; stderr: string; code: number }) => {
          throw new Error(`promtool refused the metrics (exit ${err.code}): ${err.stdout}${err.stderr}`);
        },
      );
      expect(`${stdout}${stderr}`.trim()).toBe("");
    });
  });
});
