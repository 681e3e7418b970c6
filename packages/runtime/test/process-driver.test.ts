import { readFile } from "node:fs/promises";
import {
  type ContainerStatus,
  findContainerInit,
  isProcessAlive,
  probeOnce,
  resolveProbe,
  waitHealthy,
} from "@gild/runtime";
import { EXIT_AT_START_CODE, EXIT_AT_START_MESSAGE, waitFor } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterEach, beforeEach, expect, it } from "vitest";
import { allGone, ContainerFixture, httpGet, processesMentioning, processTree } from "./container-fixture.js";

describeWith(["root", "nspawn", "busybox"], "process driver with real systemd-nspawn", () => {
  let fx: ContainerFixture;

  beforeEach(async () => {
    fx = await ContainerFixture.create("proc");
  });

  afterEach(async () => {
    await fx?.destroy();
  });

  it("starts a container from a plain directory, turns healthy, serves the marker, stops gracefully", async () => {
    const { spec, port, dataDir } = await fx.spec("web", 1, {
      marker: "gild-test v1",
      stopTimeoutMs: 10_000,
    });
    const started = await fx.start(spec);
    expect(started).toMatchObject({ app: "web", generation: 1, running: true, exitCode: null });
    const nspawnPid = started.pid as number;
    expect(fx.driver.kind).toBe("process");

    const probe = resolveProbe({
      kind: "http",
      target: `http://127.0.0.1:${port}/healthz`,
      intervalMs: 100,
      minHealthyMs: 300,
    });
    const health = await waitHealthy(probe, {
      deadlineAt: Date.now() + 20_000,
      isAlive: () => fx.driver.status("web", 1),
      logFile: spec.logFile,
    });
    expect(health.ok).toBe(true);
    const page = await httpGet(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(page.body).toContain("gild-test v1");
    expect((await readFile(`${dataDir}/starts.log`, "utf8")).trim().split("\n")).toHaveLength(1);

    const init = (await findContainerInit(nspawnPid)) as number;
    const tree = processTree(nspawnPid);
    expect(tree).toContain(init);
    expect(tree.length).toBeGreaterThanOrEqual(3); // nspawn, the serve script, httpd

    const t0 = Date.now();
    const stopped = await fx.driver.stop("web", 1);
    const took = Date.now() - t0;
    expect(stopped).toEqual({ graceful: true, exitCode: 0 });
    expect(took).toBeLessThan(5_000);
    expect(await allGone(tree)).toBe(true);
    expect(processesMentioning(spec.rootfs)).toEqual([]);
    expect(await fx.driver.status("web", 1)).toMatchObject({ running: false, pid: null, exitCode: 0 });
    // Stop is idempotent.
    expect(await fx.driver.stop("web", 1)).toMatchObject({ graceful: true });
    expect(await readFile(spec.logFile, "utf8")).toContain("serve: stopped on SIGTERM");
  });

  it("kills a container that ignores SIGTERM once the stop timeout has passed", async () => {
    const { spec, port } = await fx.spec("stubborn", 1, {
      behaviour: "ignore-sigterm",
      stopTimeoutMs: 1_500,
    });
    const started = await fx.start(spec);
    const nspawnPid = started.pid as number;
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`)).status === 200, {
      timeoutMs: 15_000,
      what: "the stubborn container to serve",
    });
    const tree = processTree(nspawnPid);
    expect(tree.length).toBeGreaterThanOrEqual(3);

    const t0 = Date.now();
    const stopped = await fx.driver.stop("stubborn", 1);
    const took = Date.now() - t0;
    expect(stopped).toEqual({ graceful: false, exitCode: null });
    expect(took).toBeGreaterThanOrEqual(1_500);
    expect(took).toBeLessThan(1_500 + 3_000);
    expect(await isProcessAlive(nspawnPid)).toBe(false);
    expect(await allGone(tree)).toBe(true);
    expect(processesMentioning(spec.rootfs)).toEqual([]);
  });

  it("reports a container that exits at start quickly, with its exit code and printed reason", async () => {
    const { spec, port } = await fx.spec("crash", 1, { behaviour: "exit-at-start" });
    const exits: ContainerStatus[] = [];
    const unsubscribe = fx.driver.onExit((status) => exits.push(status));
    await fx.start(spec);
    const probe = resolveProbe({ kind: "http", target: `http://127.0.0.1:${port}/healthz`, intervalMs: 200 });
    const t0 = Date.now();
    const result = await waitHealthy(probe, {
      deadlineAt: Date.now() + 30_000,
      isAlive: () => fx.driver.status("crash", 1),
      logFile: spec.logFile,
    });
    unsubscribe();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.exited).toBe(true);
    expect(result.exitCode).toBe(EXIT_AT_START_CODE);
    expect(result.reason).toContain(`exit code ${EXIT_AT_START_CODE}`);
    expect(result.reason).toContain(EXIT_AT_START_MESSAGE);
    await waitFor(() => exits.length > 0, { timeoutMs: 5_000, what: "the onExit event" });
    expect(exits[0]).toMatchObject({
      app: "crash",
      generation: 1,
      running: false,
      exitCode: EXIT_AT_START_CODE,
    });
  });

  it("fails an unhealthy container at its deadline, with the probe's result in the reason", async () => {
    const { spec, port } = await fx.spec("sick", 1, { behaviour: "unhealthy" });
    await fx.start(spec);
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`)).status === 200, {
      timeoutMs: 15_000,
      what: "the page to be served",
    });
    const probe = resolveProbe({
      kind: "http",
      target: `http://127.0.0.1:${port}/healthz`,
      intervalMs: 100,
      minHealthyMs: 0,
    });
    const t0 = Date.now();
    const result = await waitHealthy(probe, {
      deadlineAt: t0 + 1_500,
      isAlive: () => fx.driver.status("sick", 1),
      logFile: spec.logFile,
    });
    const took = Date.now() - t0;
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(took).toBeGreaterThanOrEqual(1_400);
    expect(took).toBeLessThan(4_000);
    expect(result.exited).toBe(false);
    expect(result.reason).toContain("not healthy by the deadline");
    expect(result.reason).toContain(`HTTP 404 from GET http://127.0.0.1:${port}/healthz`);
    expect((await fx.driver.status("sick", 1)).running).toBe(true);
  });

  it("runs exec probes inside the container", async () => {
    const { spec } = await fx.spec("execy", 1);
    await fx.start(spec);
    const exec = (argv: string[], opts: { timeoutMs: number }) => fx.driver.exec("execy", 1, argv, opts);
    const inside = resolveProbe({ kind: "exec", command: ["test", "-f", "/www/index.html"] });
    const failing = resolveProbe({ kind: "exec", command: ["false"] });
    const hostOnly = resolveProbe({ kind: "exec", command: ["test", "-d", "/work/main/packages"] });
    expect(await probeOnce(inside, { exec })).toMatchObject({ ok: true });
    expect(await probeOnce(failing, { exec })).toMatchObject({ ok: false, detail: "false: exit code 1" });
    // The host's tree is not visible inside: the probe really runs in the container.
    expect((await probeOnce(hostOnly, { exec })).ok).toBe(false);
    const env = await fx.driver.exec("execy", 1, ["sh", "-c", 'echo "$GILD_APP $(hostname)"'], {
      timeoutMs: 5_000,
    });
    expect(env.exitCode).toBe(0);
    expect(env.output).toMatch(/^execy gild-execy-1-[0-9a-f]{8}$/);
    const slow = await fx.driver.exec("execy", 1, ["sleep", "30"], { timeoutMs: 300 });
    expect(slow.exitCode).toBeNull();
    expect(slow.output).toContain("timed out");
  });

  it("execs only into the payload: right after start, every exec sees the container's environment", async () => {
    // nspawn forks a copy of itself that execs the payload once the container is set up: an exec that
    // entered the copy ran in a half-made container without $GILD_APP (seen in 2 runs of 3).
    for (let generation = 1; generation <= 5; generation++) {
      const { spec } = await fx.spec("early", generation);
      await fx.start(spec);
      const res = await fx.driver.exec("early", generation, ["sh", "-c", 'echo "app=$GILD_APP"'], {
        timeoutMs: 5_000,
      });
      expect(res, `generation ${generation}`).toMatchObject({ exitCode: 0, output: "app=early" });
      await fx.driver.stop("early", generation, { timeoutMs: 5_000 });
    }
  });

  it("refuses to start the same generation twice, and checks host paths first", async () => {
    const { spec, port } = await fx.spec("twice", 1);
    await fx.start(spec);
    // Serving means its SIGTERM trap is set, so the cleanup's stop is quick.
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`)).status === 200, {
      timeoutMs: 15_000,
      what: "the container to serve",
    });
    await expect(fx.driver.start(spec)).rejects.toMatchObject({ code: "GILD_CONFLICT" });
    const missing = { ...spec, generation: 2, rootfs: `${fx.dir}/nowhere` };
    await expect(fx.driver.start(missing)).rejects.toMatchObject({ code: "GILD_CONTAINER_START_FAILED" });
  });
});
