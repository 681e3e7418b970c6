import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LaunchedToolError, SpawnHelper } from "@gild/btrfs";
import { silentLogger } from "@gild/core";
import { waitFor } from "@gild/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

// The helper runs btrfs and setpriv only: these tests run their shell through setpriv, as the pool
// runs btrfs receive.
const sh = (script: string, ...args: string[]) => ["--", "sh", "-c", script, "sh", ...args];

const alive = (pid: number) =>
  existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");

/** The pid a program wrote to `file` once it runs. */
const pidIn = (file: string) =>
  waitFor(
    () => {
      const pid = existsSync(file) ? Number(readFileSync(file, "utf8").trim()) : 0;
      return pid > 0 ? pid : undefined;
    },
    { what: `a pid in ${file}`, timeoutMs: 10_000 },
  );

describe("SpawnHelper", () => {
  let dir: string;
  let helper: SpawnHelper;
  const started: number[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "gild-spawn-test-"));
    helper = new SpawnHelper({ socketDir: join(dir, "sockets"), log: silentLogger });
  });

  afterEach(() => {
    helper.close();
    for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  // The first start forks the helper: a socket sent before it listened lost its first 64 KiB.
  it("runs a program outside this process and feeds its stdin through a socket", async () => {
    const out = join(dir, "out.bin");
    const tool = helper.start("setpriv", sh('cat > "$1"; echo done; echo warn >&2', out), { stdin: true });
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    (tool.stdin as NodeJS.WritableStream).end(data);
    const exit = await tool.exited;
    expect(exit).toEqual({ exitCode: 0, signal: null, stdout: "done\n", stderr: "warn\n" });
    expect(readFileSync(out).equals(data)).toBe(true);
    expect(helper.helperPid).toBeGreaterThan(0);
    expect(helper.helperPid).not.toBe(process.pid);
    // Each socket file goes once its connection is accepted.
    expect(readdirSync(join(dir, "sockets"))).toEqual([]);
  });

  it("keeps its sockets in a directory of its own when the given one's path is too long for one", async () => {
    const deep = join(dir, "d".repeat(120));
    const before = new Set(readdirSync(tmpdir()));
    const long = new SpawnHelper({ socketDir: deep, log: silentLogger });
    try {
      const made = readdirSync(tmpdir()).filter(
        (name) => !before.has(name) && name.startsWith("gild-spawn-"),
      );
      expect(made.length).toBe(1);
      const out = join(dir, "long.txt");
      const tool = long.start("setpriv", sh('cat > "$1"', out), { stdin: true });
      (tool.stdin as NodeJS.WritableStream).end("through a socket elsewhere\n");
      expect(await tool.exited).toMatchObject({ exitCode: 0 });
      expect(readFileSync(out, "utf8")).toBe("through a socket elsewhere\n");
      expect(existsSync(deep)).toBe(false);
      long.close();
      // Its own directory goes with it.
      expect(existsSync(join(tmpdir(), made[0] as string))).toBe(false);
    } finally {
      long.close();
    }
  });

  it("says how a program ended, and runs nothing but btrfs and setpriv", async () => {
    const failed = await helper.start("setpriv", sh("echo no >&2; exit 3"), { stdin: false }).exited;
    expect(failed).toMatchObject({ exitCode: 3, signal: null, stderr: "no\n" });
    const other = await helper.start("sh", ["-c", "true"], { stdin: false }).exited;
    expect(other.startError?.code).toBe("ENOTALLOWED");
    // What runTool and receive read of a failed run, as of execa's error of a program they spawned.
    expect(new LaunchedToolError("setpriv", failed)).toMatchObject({ exitCode: 3, stderr: "no\n" });
    const missing = { ...failed, exitCode: null, startError: { code: "ENOENT", message: "not found" } };
    expect(new LaunchedToolError("setpriv", missing).code).toBe("ENOENT");
  });

  it("signals a program, also one asked to stop before it started", async () => {
    const pidFile = join(dir, "pid");
    const tool = helper.start("setpriv", sh(`echo $$ > ${pidFile}; exec sleep 30`), { stdin: false });
    started.push(await pidIn(pidFile));
    tool.kill("SIGTERM");
    expect(await tool.exited).toMatchObject({ exitCode: null, signal: "SIGTERM" });
    // Killed while its stdin socket is still being accepted: it never runs.
    const never = join(dir, "never");
    const early = helper.start("setpriv", sh(`touch ${never}`), { stdin: true });
    early.kill("SIGKILL");
    expect(await early.exited).toMatchObject({ exitCode: null, signal: "SIGKILL" });
    expect(existsSync(never)).toBe(false);
  });

  it("starts a new helper when one dies, and reports what ran in it as failed", async () => {
    const pidFile = join(dir, "pid");
    const tool = helper.start("setpriv", sh(`echo $$ > ${pidFile}; exec sleep 30`), { stdin: false });
    started.push(await pidIn(pidFile));
    const first = helper.helperPid as number;
    process.kill(first, "SIGKILL");
    expect((await tool.exited).startError?.code).toBe("EHELPER");
    const again = await helper.start("setpriv", sh("echo again"), { stdin: false }).exited;
    expect(again).toMatchObject({ exitCode: 0, stdout: "again\n" });
    expect(helper.helperPid).not.toBe(first);
  });

  it("kills what runs when its parent stops it, and refuses to start more", async () => {
    const pidFile = join(dir, "pid");
    const tool = helper.start("setpriv", sh(`echo $$ > ${pidFile}; exec sleep 30`), { stdin: false });
    const program = await pidIn(pidFile);
    started.push(program);
    helper.close();
    expect((await tool.exited).startError?.code).toBe("ECLOSED");
    await waitFor(() => !alive(program), { what: "the program to die with its helper", timeoutMs: 10_000 });
    expect((await helper.start("setpriv", ["--", "true"], { stdin: false }).exited).startError?.code).toBe(
      "ECLOSED",
    );
    // One that wanted a stdin gets one already closed, which its writer sees as such.
    const late = helper.start("setpriv", ["--", "true"], { stdin: true });
    expect(late.stdin?.destroyed).toBe(true);
    expect((await late.exited).startError?.code).toBe("ECLOSED");
  });

  it("kills what runs when its parent is killed with -9", async () => {
    const pidFile = join(dir, "pid");
    const btrfsIndex = new URL("../dist/index.js", import.meta.url).href;
    const coreIndex = import.meta.resolve("@gild/core");
    const script = `
      const { SpawnHelper } = await import(${JSON.stringify(btrfsIndex)});
      const { silentLogger } = await import(${JSON.stringify(coreIndex)});
      const helper = new SpawnHelper({ socketDir: ${JSON.stringify(join(dir, "parent-sockets"))}, log: silentLogger });
      helper.start("setpriv", ${JSON.stringify(sh(`echo $$ > ${pidFile}; exec sleep 30`))}, { stdin: false });
      setInterval(() => undefined, 1000);
    `;
    const parent: ChildProcess = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    try {
      const program = await pidIn(pidFile);
      started.push(program);
      parent.kill("SIGKILL");
      await waitFor(() => !alive(program), { what: "the program to die with its parent", timeoutMs: 10_000 });
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
