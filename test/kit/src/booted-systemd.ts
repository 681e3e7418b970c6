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
  /** More host paths made visible, as `host:inside` (nspawn's --bind-ro / --bind syntax). */
  bind?: ReadonlyArray<{ host: string; inside: string; readOnly?: boolean }>;
  /** Debian packages installed by debootstrap besides BOOTED_SYSTEMD_PACKAGES. */
  extraPackages?: readonly string[];
  /** Called with the root file system between debootstrap and the first boot (files to place). */
  prepare?: (root: string) => Promise<void>;
  /**
   * A network namespace (its path, e.g. /run/netns/NAME) the container joins instead of a private one
   * with loopback only: the caller wires it (a veth to a bridge) and removes it.
   */
  networkNamespacePath?: string;
  /**
   * Start nspawn again, on the same root, when it exits with status 133: a `systemctl reboot` inside
   * (what systemd-nspawn@.service does with RestartForceExitStatus=133). `run()` then enters the new boot.
   */
  rebootable?: boolean;
}

/** nspawn's exit status when the container asked for a reboot. */
export const NSPAWN_REBOOT_EXIT = 133;

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

/** One run of systemd-nspawn: one boot of the container. */
interface NspawnRun {
  child: ChildProcess;
  /** nspawn's exit status (null when killed by a signal). */
  ended: Promise<number | null>;
  /** The container's systemd, once found. */
  init?: number;
}

function startNspawn(args: readonly string[], logFile: string): NspawnRun {
  const logFd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn("systemd-nspawn", args, { stdio: ["ignore", logFd, logFd], env: { PATH } });
  } finally {
    closeSync(logFd);
  }
  const ended = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, ended };
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** A booted Debian container; `destroy()` halts it, and an interrupted test run kills it. */
export class BootedSystemd {
  private destroying = false;
  private boots = 1;
  private rebootFailure: Error | undefined;

  private constructor(
    readonly machine: string,
    readonly logFile: string,
    private current: NspawnRun,
    private readonly nspawnArgs: readonly string[],
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
          `--include=${[...BOOTED_SYSTEMD_PACKAGES, ...(options.extraPackages ?? [])].join(",")}`,
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
    await options.prepare?.(root);
    const t1 = Date.now();
    const machine = `gild-boot-${randomBytes(4).toString("hex")}`;
    const logFile = join(options.dir, "boot.log");
    const args = [
      "--quiet",
      "--boot",
      // No machined or scope unit on the host, whose PID 1 is not systemd.
      "--register=no",
      "--keep-unit",
      // Payloads may listen on any port without meeting the host's.
      options.networkNamespacePath
        ? `--network-namespace-path=${options.networkNamespacePath}`
        : "--private-network",
      "--console=pipe",
      `--machine=${machine}`,
      `--directory=${root}`,
      ...options.bindReadOnly.map((path) => `--bind-ro=${path}`),
      ...(options.bind ?? []).map((b) => `--bind${b.readOnly ? "-ro" : ""}=${b.host}:${b.inside}`),
    ];
    const holder: { booted?: BootedSystemd; first: NspawnRun } = { first: startNspawn(args, logFile) };
    const unregister = registerCleanup(`booted systemd ${machine}`, () => {
      const now = holder.booted ? holder.booted.current : holder.first;
      if (holder.booted) holder.booted.destroying = true;
      // SIGKILL to the container's PID 1 ends its whole pid namespace; nspawn then exits.
      if (now.init !== undefined) kill(now.init, "SIGKILL");
      kill(now.child.pid as number, "SIGKILL");
    });
    const timings = { debootstrapMs: t1 - t0, bootMs: 0 };
    const booted = new BootedSystemd(machine, logFile, holder.first, args, unregister, timings);
    holder.booted = booted;
    try {
      await booted.waitForInit(holder.first);
      const state = await booted.waitUntilRunning(90_000);
      timings.bootMs = Date.now() - t1;
      if (state === "degraded") {
        const failedUnits = await booted.run(["systemctl", "--failed", "--no-legend", "--plain"], 10_000);
        process.stderr.write(`booted systemd ${machine} is degraded:\n${failedUnits.stdout}`);
      }
    } catch (err) {
      booted.destroying = true;
      kill(holder.first.child.pid as number, "SIGKILL");
      if (holder.first.init !== undefined) kill(holder.first.init, "SIGKILL");
      await holder.first.ended;
      unregister();
      const log = await readFile(logFile, "utf8").catch(() => "");
      throw new Error(
        `the booted container did not come up: ${String(err)}\nboot log:\n${log.slice(-3000)}`,
        { cause: err },
      );
    }
    if (options.rebootable) booted.restartOnReboot(holder.first);
    return booted;
  }

  /** How many times the container booted (1, then one more per reboot). */
  get bootCount(): number {
    return this.boots;
  }

  /** The pid (on this machine) of the container's systemd, undefined between two boots. */
  get initPid(): number | undefined {
    return this.current.init;
  }

  /** Why a reboot did not bring the container back, if one did not. */
  get rebootError(): Error | undefined {
    return this.rebootFailure;
  }

  private async waitForInit(nspawn: NspawnRun): Promise<number> {
    const init = await waitFor(
      () => {
        if (!isRunning(nspawn.child)) throw new Error(`systemd-nspawn exited (${nspawn.child.exitCode})`);
        return findInit(nspawn.child.pid as number);
      },
      { timeoutMs: 30_000, what: "systemd in the container" },
    );
    nspawn.init = init;
    return init;
  }

  /** Wait until systemd inside says its boot is done: "running" or "degraded". */
  async waitUntilRunning(timeoutMs: number): Promise<"running" | "degraded"> {
    // is-system-running fails until systemd listens; --wait then returns once the boot is done.
    return waitFor(
      async () => {
        if (this.rebootFailure) throw this.rebootFailure;
        const { stdout } = await this.run(["systemctl", "is-system-running", "--wait"], 60_000);
        const word = stdout.trim();
        return word === "running" || word === "degraded" ? word : undefined;
      },
      { timeoutMs, intervalMs: 200, what: "the container's boot to finish" },
    );
  }

  /** When this nspawn exits with 133, boot the same root again (and so on for the next reboot). */
  private restartOnReboot(nspawn: NspawnRun): void {
    void nspawn.ended.then(async (code) => {
      if (this.destroying || code !== NSPAWN_REBOOT_EXIT) return;
      const next = startNspawn(this.nspawnArgs, this.logFile);
      this.current = next;
      this.boots += 1;
      try {
        await this.waitForInit(next);
        this.restartOnReboot(next);
      } catch (err) {
        this.rebootFailure = new Error(`the container did not boot again after a reboot: ${String(err)}`, {
          cause: err,
        });
      }
    });
  }

  /** Run a program inside (all of the container's namespaces, its root), with a plain PATH only. */
  run(argv: readonly string[], timeoutMs: number): Promise<InsideResult> {
    const init = this.current.init;
    if (init === undefined)
      return Promise.resolve({ stdout: "", stderr: "the container is between two boots", exitCode: null });
    return new Promise((resolve) => {
      execFile(
        "nsenter",
        ["--target", String(init), "--all", "--", ...argv],
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
    this.destroying = true;
    const { child, ended, init } = this.current;
    if (isRunning(child)) {
      kill(child.pid as number, "SIGTERM");
      const halted = await Promise.race([
        ended.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000).unref()),
      ]);
      if (!halted) {
        if (init !== undefined) kill(init, "SIGKILL");
        kill(child.pid as number, "SIGKILL");
        await ended;
      }
    }
    this.unregister();
    // nspawn removes this empty directory as it exits, unless it was killed: it is this container's own,
    // named after it.
    const propagate = `/run/systemd/nspawn/propagate/${this.machine}`;
    if (existsSync(propagate)) rmdirSync(propagate);
  }
}
