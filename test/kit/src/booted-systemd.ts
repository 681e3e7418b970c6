import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { registerCleanup } from "./cleanup-registry.js";
import { run } from "./host-commands.js";
import { waitFor } from "./wait.js";

// Debian bookworm booted with systemd as PID 1 inside systemd-nspawn: where code that needs a real
// systemd (the runtime's systemd driver) can run on a machine whose own PID 1 is something else.
// Measured on this kind of machine (Debian 12 host, systemd 252, hybrid cgroups, 2 shared cores):
// debootstrap 40-60 s with or without a package cache (unpacking dominates), boot to `running` under
// 1 s, halt ~1.5 s; systemd-nspawn nested inside, as a systemd service, works.

const MIRROR = "http://deb.debian.org/debian";
/** Beyond minbase: systemd to boot, nspawn to nest (it needs a D-Bus system bus), a static busybox. */
export const BOOTED_SYSTEMD_PACKAGES = ["systemd", "dbus", "systemd-container", "busybox-static"] as const;
const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

export interface BootOptions {
  /** A directory of the caller's own: the root file system is made in it and the boot log written there. */
  dir: string;
  /** Downloaded .deb files, kept between runs when the caller keeps this directory. */
  cacheDir: string;
  /** Host paths made visible read-only at the same path inside (the repo, Node.js). */
  bindReadOnly: readonly string[];
}

export interface InsideResult {
  stdout: string;
  stderr: string;
  /** null when it was killed (the timeout). */
  exitCode: number | null;
}

/** The pid of the container's systemd: nspawn's child once that is systemd itself. */
function findInit(nspawnPid: number): number | undefined {
  const taskDir = `/proc/${nspawnPid}/task`;
  if (!existsSync(taskDir)) return undefined;
  for (const task of readdirSync(taskDir)) {
    const children = readFileSync(`${taskDir}/${task}/children`, "utf8").trim().split(/\s+/);
    for (const child of children.filter(Boolean)) {
      if (readFileSync(`/proc/${child}/comm`, "utf8").trim() === "systemd") return Number(child);
    }
  }
  return undefined;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** A booted Debian container; `destroy()` halts it, and an interrupted test run kills it. */
export class BootedSystemd {
  private constructor(
    readonly machine: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    private readonly init: number,
    private readonly unregister: () => void,
    /** How long debootstrap and the boot took, in ms. */
    readonly timings: { debootstrapMs: number; bootMs: number },
  ) {}

  /** debootstrap (into options.dir), boot, and wait until systemd says the boot is done. */
  static async boot(options: BootOptions): Promise<BootedSystemd> {
    const root = join(options.dir, "root");
    await mkdir(options.cacheDir, { recursive: true });
    const t0 = Date.now();
    try {
      await run(
        "debootstrap",
        [
          "--variant=minbase",
          `--include=${BOOTED_SYSTEMD_PACKAGES.join(",")}`,
          `--cache-dir=${options.cacheDir}`,
          "bookworm",
          root,
          MIRROR,
        ],
        { timeoutMs: 10 * 60_000 },
      );
    } catch (err) {
      const detail = await readFile(join(root, "debootstrap", "debootstrap.log"), "utf8").catch(() => "");
      throw new Error(`debootstrap failed${detail ? `; its log ends:\n${detail.slice(-3000)}` : ""}`, {
        cause: err,
      });
    }
    const t1 = Date.now();
    const machine = `gild-boot-${randomBytes(4).toString("hex")}`;
    const logFile = join(options.dir, "boot.log");
    const logFd = openSync(logFile, "a");
    const args = [
      "--quiet",
      "--boot",
      // No machined or scope unit on the host, whose PID 1 is not systemd.
      "--register=no",
      "--keep-unit",
      // Payloads may listen on any port without meeting the host's.
      "--private-network",
      "--console=pipe",
      `--machine=${machine}`,
      `--directory=${root}`,
      ...options.bindReadOnly.map((path) => `--bind-ro=${path}`),
    ];
    let child: ChildProcess;
    try {
      child = spawn("systemd-nspawn", args, { stdio: ["ignore", logFd, logFd], env: { PATH } });
    } finally {
      closeSync(logFd);
    }
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const nspawnPid = child.pid as number;
    let init: number | undefined;
    const unregister = registerCleanup(`booted systemd ${machine}`, () => {
      // SIGKILL to the container's PID 1 ends its whole pid namespace; nspawn then exits.
      if (init !== undefined) kill(init, "SIGKILL");
      kill(nspawnPid, "SIGKILL");
    });
    const failed = async (err: unknown): Promise<never> => {
      kill(nspawnPid, "SIGKILL");
      if (init !== undefined) kill(init, "SIGKILL");
      await exited;
      unregister();
      const log = await readFile(logFile, "utf8").catch(() => "");
      throw new Error(
        `the booted container did not come up: ${String(err)}\nboot log:\n${log.slice(-3000)}`,
        {
          cause: err,
        },
      );
    };
    try {
      init = await waitFor(() => findInit(nspawnPid), {
        timeoutMs: 30_000,
        what: "systemd in the container",
      });
      const timings = { debootstrapMs: t1 - t0, bootMs: 0 };
      const booted = new BootedSystemd(machine, logFile, child, exited, init, unregister, timings);
      // is-system-running fails until systemd listens; --wait then returns once the boot is done.
      const state = await waitFor(
        async () => {
          const { stdout } = await booted.run(["systemctl", "is-system-running", "--wait"], 60_000);
          const word = stdout.trim();
          return word === "running" || word === "degraded" ? word : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 200, what: "the container's boot to finish" },
      );
      timings.bootMs = Date.now() - t1;
      if (state === "degraded") {
        const failedUnits = await booted.run(["systemctl", "--failed", "--no-legend", "--plain"], 10_000);
        process.stderr.write(`booted systemd ${machine} is degraded:\n${failedUnits.stdout}`);
      }
      return booted;
    } catch (err) {
      return failed(err);
    }
  }

  /** Run a program inside (all of the container's namespaces, its root), with a plain PATH only. */
  run(argv: readonly string[], timeoutMs: number): Promise<InsideResult> {
    return new Promise((resolve) => {
      execFile(
        "nsenter",
        ["--target", String(this.init), "--all", "--", ...argv],
        { env: { PATH }, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (err as { code?: unknown }).code : 0;
          resolve({ stdout, stderr, exitCode: typeof code === "number" ? code : null });
        },
      );
    });
  }

  /** Halt the container (SIGTERM to nspawn: systemd shuts down), killing it should that hang. */
  async destroy(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      kill(this.child.pid as number, "SIGTERM");
      const halted = await Promise.race([
        this.exited.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000).unref()),
      ]);
      if (!halted) {
        kill(this.init, "SIGKILL");
        kill(this.child.pid as number, "SIGKILL");
        await this.exited;
      }
    }
    this.unregister();
    // nspawn removes this empty directory as it exits, unless it was killed: it is this container's own,
    // named after it.
    const propagate = `/run/systemd/nspawn/propagate/${this.machine}`;
    if (existsSync(propagate)) rmdirSync(propagate);
  }
}
