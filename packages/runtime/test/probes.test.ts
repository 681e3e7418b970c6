import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isGildError } from "@gild/core";
import { PROBE_DEFAULTS, parseTcpTarget, probeOnce, resolveProbe, tailFile } from "@gild/runtime";
import { freePort } from "@gild/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("probe specs", () => {
  it("apply the defaults and freeze", () => {
    const probe = resolveProbe({ kind: "http", target: "http://127.0.0.1:8080/healthz" });
    expect(probe).toEqual({
      kind: "http",
      target: "http://127.0.0.1:8080/healthz",
      command: null,
      ...PROBE_DEFAULTS,
    });
    expect(PROBE_DEFAULTS).toEqual({
      intervalMs: 2_000,
      timeoutMs: 1_000,
      initialDelayMs: 0,
      minHealthyMs: 10_000,
    });
    expect(Object.isFrozen(probe)).toBe(true);
  });

  it("report every problem at once", () => {
    const cases: Array<[unknown, string[]]> = [
      [{ kind: "http", target: "ftp://x/" }, ["target"]],
      [{ kind: "http" }, ["target"]],
      [{ kind: "tcp", target: "localhost" }, ["target"]],
      [{ kind: "tcp", target: "localhost:70000" }, ["target"]],
      [{ kind: "exec", command: [] }, ["command"]],
      [{ kind: "grpc", target: "x:1" }, ["kind"]],
      [
        {
          kind: "tcp",
          target: "h:1",
          intervalMs: 0,
          timeoutMs: 1.5,
          initialDelayMs: -1,
          minHealthyMs: "10s",
        },
        ["intervalMs", "timeoutMs", "initialDelayMs", "minHealthyMs"],
      ],
    ];
    for (const [input, paths] of cases) {
      let caught: unknown;
      try {
        resolveProbe(input as never);
      } catch (err) {
        caught = err;
      }
      expect(isGildError(caught, "GILD_INVALID_SPEC"), JSON.stringify(input)).toBe(true);
      const problems = (caught as { details: { problems: string[] } }).details.problems;
      expect(problems.map((p) => p.split(":")[0])).toEqual(paths);
    }
  });

  it("parse tcp targets, IPv6 in brackets", () => {
    expect(parseTcpTarget("127.0.0.1:80")).toEqual({ host: "127.0.0.1", port: 80 });
    expect(parseTcpTarget("[::1]:8443")).toEqual({ host: "::1", port: 8443 });
    expect(parseTcpTarget("db.internal:5432")).toEqual({ host: "db.internal", port: 5432 });
    expect(parseTcpTarget("::1:80")).toBeUndefined();
    expect(parseTcpTarget("host:0")).toBeUndefined();
  });
});

describe("probes against real sockets", () => {
  let server: http.Server;
  let port: number;
  let tcp: net.Server;
  let tcpPort: number;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/ok") res.writeHead(200).end("ok");
      else if (req.url === "/moved") res.writeHead(302, { location: "/elsewhere" }).end();
      else if (req.url === "/slow") setTimeout(() => res.writeHead(200).end("late"), 2_000).unref();
      else res.writeHead(500).end("broken");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as net.AddressInfo).port;
    tcp = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    tcpPort = (tcp.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await new Promise((resolve) => tcp.close(resolve));
  });

  it("http: 2xx and 3xx are healthy (redirects not followed), 5xx is not", async () => {
    const ok = await probeOnce(resolveProbe({ kind: "http", target: `http://127.0.0.1:${port}/ok` }));
    expect(ok).toMatchObject({ ok: true, detail: `HTTP 200 from GET http://127.0.0.1:${port}/ok` });
    expect(ok.durationMs).toBeGreaterThanOrEqual(0);
    expect(ok.at).toBeLessThanOrEqual(Date.now());
    const moved = await probeOnce(resolveProbe({ kind: "http", target: `http://127.0.0.1:${port}/moved` }));
    expect(moved).toMatchObject({ ok: true, detail: expect.stringContaining("HTTP 302") });
    const broken = await probeOnce(resolveProbe({ kind: "http", target: `http://127.0.0.1:${port}/x` }));
    expect(broken).toMatchObject({ ok: false, detail: expect.stringContaining("HTTP 500") });
  });

  it("http: a slow answer fails at the timeout", async () => {
    const slow = await probeOnce(
      resolveProbe({ kind: "http", target: `http://127.0.0.1:${port}/slow`, timeoutMs: 200 }),
    );
    expect(slow.ok).toBe(false);
    expect(slow.detail).toContain("no answer within 200 ms");
    expect(slow.durationMs).toBeLessThan(1_500);
  });

  it("http: a closed port fails with a clear detail", async () => {
    const closed = await freePort();
    const result = await probeOnce(
      resolveProbe({ kind: "http", target: `http://127.0.0.1:${closed}/healthz` }),
    );
    expect(result.ok).toBe(false);
    expect(result.detail).toBe(
      `GET http://127.0.0.1:${closed}/healthz: connection refused (ECONNREFUSED): nothing listens there`,
    );
  });

  it("tcp: connects to a listening port, and fails on a closed one", async () => {
    expect(await probeOnce(resolveProbe({ kind: "tcp", target: `127.0.0.1:${tcpPort}` }))).toMatchObject({
      ok: true,
      detail: `connected to 127.0.0.1:${tcpPort}`,
    });
    const closed = await freePort();
    const result = await probeOnce(resolveProbe({ kind: "tcp", target: `127.0.0.1:${closed}` }));
    expect(result).toMatchObject({ ok: false, detail: expect.stringContaining("ECONNREFUSED") });
  });

  it("exec: needs a container to run in, and reports exit codes and errors", async () => {
    const probe = resolveProbe({ kind: "exec", command: ["check", "--quick"] });
    await expect(probeOnce(probe)).rejects.toThrow(/needs ctx.exec/);
    const seen: string[][] = [];
    const ok = await probeOnce(probe, {
      exec: async (argv) => {
        seen.push(argv);
        return { exitCode: 0, output: "" };
      },
    });
    expect(ok).toMatchObject({ ok: true });
    expect(seen).toEqual([["check", "--quick"]]);
    const failed = await probeOnce(probe, {
      exec: async () => ({ exitCode: 2, output: "line 1\ndb down\n" }),
    });
    expect(failed).toMatchObject({ ok: false, detail: "check --quick: exit code 2: db down" });
    const timedOut = await probeOnce(probe, { exec: async () => ({ exitCode: null, output: "" }) });
    expect(timedOut.detail).toContain("timed out");
    const notRunning = await probeOnce(probe, {
      exec: async () => {
        throw new Error("web generation 1 is not running");
      },
    });
    expect(notRunning).toMatchObject({ ok: false, detail: "check --quick: web generation 1 is not running" });
  });
});

describe("tailFile", () => {
  it("returns the last lines, or nothing for a missing file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gild-tail-"));
    try {
      const path = join(dir, "app.log");
      await writeFile(path, `${Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join("\n")}\n`);
      expect(await tailFile(path, 3)).toBe("line 48\nline 49\nline 50");
      expect((await tailFile(path)).split("\n")).toHaveLength(20);
      expect(await tailFile(join(dir, "missing.log"))).toBe("");
      // A huge log is not read whole; the partial first line is dropped.
      await writeFile(path, `${"x".repeat(200_000)}\nlast words\n`);
      expect(await tailFile(path, 5)).toBe("last words");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
