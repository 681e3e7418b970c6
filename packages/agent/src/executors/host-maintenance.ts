import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { GildError, type Logger } from "@gild/core";
import { type HostCommandResult, MAX_OUTPUT_TAIL_BYTES, type RunHostCommand } from "@gild/protocol";
import { currentBootId, rebootHost, runHostCommand } from "@gild/runtime";
import type { CommandResult, ResumedCommand } from "../command-runner.js";
import { readIfExists, writeFileAtomic } from "../write-atomic.js";

/**
 * Exit status of an agent that stood in for a reboot (the test hook, GILD_TEST_REBOOT=restart):
 * EX_TEMPFAIL, for its supervisor (the test kit) to start it again.
 */
export const EXIT_REBOOT_BY_RESTART = 75;

/** What a reboot in progress leaves in the state dir (reboot.json), for the agent that runs after it. */
interface RebootIntent {
  commandId: string;
  /** The boot id before the reboot: a different one after it proves the host rebooted. */
  bootId: string;
  /**
   * When PID 1 started (initStart): a different one after it also proves a reboot. Absent in a
   * reboot.json written by an older agent.
   */
  initStart?: string;
  /** The test hook stood in for the reboot: the agent's restart counts as one. */
  byRestart: boolean;
  at: number;
}

/**
 * The argv that runs `argv` as a transient service of its own (systemd-run), outside the agent's unit:
 * gild-agent.service is sandboxed (ProtectSystem=strict, PrivateTmp=yes), so a command run in it sees
 * /usr, /etc and /var/lib/dpkg read-only and a /var/tmp of its own that goes with the agent, and an
 * upgrade could change nothing. systemd stops the service (its whole cgroup) at the timeout, as the
 * agent's own timeout ends the waiting client; --pipe gives the agent its output and exit code.
 */
export function asTransientService(argv: readonly string[], timeoutMs: number): string[] {
  return [
    "systemd-run",
    "--quiet",
    "--wait",
    "--pipe",
    "--collect",
    "--service-type=exec",
    `--unit=gild-host-command-${randomBytes(4).toString("hex")}`,
    "--description=gild host update command",
    `--property=RuntimeMaxSec=${Math.max(1, Math.ceil(timeoutMs / 1000))}s`,
    "--",
    ...argv,
  ];
}

/**
 * When this system's PID 1 started, in clock ticks since the kernel booted (/proc/1/stat, field 22).
 * The boot id alone misses a container's reboot: the agent's unit has ProtectKernelTunables=yes, which
 * mounts /proc/sys afresh, so inside a container (systemd-nspawn) the agent reads the host kernel's boot
 * id, not the one nspawn gives each boot of the container; a new PID 1 is a new boot there too.
 */
export async function initStart(): Promise<string> {
  const stat = await readFile("/proc/1/stat", "utf8");
  // The fields after the command name, which is in parentheses and may hold spaces: state is field 3.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[22 - 3] ?? "";
}

/** A host command that did not exit 0: the coded error, carrying its result for the controller. */
export class HostCommandFailed extends GildError {
  readonly result: { hostCommand: HostCommandResult };

  constructor(result: HostCommandResult) {
    const last = result.outputTail.trimEnd().split("\n").slice(-3).join("\n");
    super("GILD_COMMAND_FAILED", `exit code ${result.exitCode}${last ? `: ${last}` : ""}`);
    this.result = { hostCommand: result };
  }
}

/**
 * The host-update commands (docs/architecture.md, Host updates): run the operator's command on the
 * host, and reboot it with every app stopped cleanly first. A reboot's command is answered by the agent
 * that runs after it: `resumeAfterReboot` at start finishes it from reboot.json.
 */
export class HostMaintenance {
  private readonly intentPath: string;
  private readonly commandsAsServices: boolean;

  constructor(
    private readonly deps: {
      stateDir: string;
      log: Logger;
      /** Stop every app cleanly (each its own stop timeout), no restarts after. */
      stopApps: () => Promise<void>;
      /** Start the apps again when the reboot could not be made. */
      restartApps: () => Promise<void>;
      /** The test hook: instead of rebooting, stop the agent with EXIT_REBOOT_BY_RESTART. */
      rebootByRestart: boolean;
      /** Stop the agent with this exit status. */
      exit: (code: number) => void;
      /** Where the host flags a required reboot (tests point it elsewhere). */
      rebootRequiredFile?: string;
      /**
       * Run commands as transient services (asTransientService). Default: where systemd is PID 1, as
       * the agent then runs in its sandboxed unit.
       */
      commandsAsServices?: boolean;
    },
  ) {
    this.intentPath = join(deps.stateDir, "reboot.json");
    this.commandsAsServices = deps.commandsAsServices ?? existsSync("/run/systemd/system");
  }

  /** RunHostCommand: exit 0 succeeds; any other outcome fails, its result (exit, output) attached. */
  async run(command: RunHostCommand): Promise<CommandResult> {
    this.deps.log.info(
      { argv: command.argv, timeoutMs: command.timeoutMs, asService: this.commandsAsServices },
      "running a host command",
    );
    const argv = this.commandsAsServices ? asTransientService(command.argv, command.timeoutMs) : command.argv;
    const outcome = await runHostCommand(argv, {
      timeoutMs: command.timeoutMs,
      maxOutputBytes: MAX_OUTPUT_TAIL_BYTES,
      ...(this.deps.rebootRequiredFile ? { rebootRequiredFile: this.deps.rebootRequiredFile } : {}),
    });
    const result: HostCommandResult = {
      exitCode: outcome.exitCode,
      outputTail: outcome.outputTail,
      rebootRequired: outcome.rebootRequired,
    };
    if (outcome.exitCode !== 0) throw new HostCommandFailed(result);
    return { hostCommand: result };
  }

  /**
   * RebootHost: write reboot.json, stop every app, then reboot (or, with the test hook, exit for a
   * restart). Never resolves when the reboot goes ahead: the agent after it answers the command.
   */
  async reboot(commandId: string): Promise<CommandResult> {
    const intent: RebootIntent = {
      commandId,
      bootId: await currentBootId(),
      initStart: await initStart(),
      byRestart: this.deps.rebootByRestart,
      at: Date.now(),
    };
    await writeFileAtomic(this.intentPath, JSON.stringify(intent), 0o600);
    this.deps.log.warn({ commandId, byRestart: intent.byRestart }, "stopping every app to reboot the host");
    await this.deps.stopApps();
    if (this.deps.rebootByRestart) {
      this.deps.log.warn({ exitCode: EXIT_REBOOT_BY_RESTART }, "test hook: exiting instead of rebooting");
      this.deps.exit(EXIT_REBOOT_BY_RESTART);
    } else {
      try {
        await rebootHost();
      } catch (err) {
        // No reboot is coming: the apps run again, and the command fails with the reason.
        await rm(this.intentPath, { force: true });
        await this.deps.restartApps();
        throw err;
      }
    }
    return new Promise<CommandResult>(() => undefined);
  }

  /**
   * At start: a reboot.json left by the agent before means a RebootHost command waits for its answer.
   * Succeeded when the boot id changed (or the test hook stood in for the reboot); failed otherwise.
   */
  async resumeAfterReboot(): Promise<ResumedCommand | undefined> {
    const text = await readIfExists(this.intentPath);
    if (text === null) return undefined;
    let intent: RebootIntent;
    try {
      intent = JSON.parse(text) as RebootIntent;
    } catch (err) {
      throw new GildError("GILD_STATE_CORRUPT", `${this.intentPath} is damaged: ${(err as Error).message}`, {
        hint: "remove it: the reboot command it belonged to then fails at its controller's deadline",
        cause: err,
      });
    }
    const rebooted =
      intent.byRestart ||
      (await currentBootId()) !== intent.bootId ||
      (intent.initStart !== undefined && (await initStart()) !== intent.initStart);
    this.deps.log.info({ commandId: intent.commandId, rebooted }, "answering the reboot command");
    return {
      commandId: intent.commandId,
      kind: "rebootHost",
      run: async () => {
        if (!rebooted)
          throw new GildError("GILD_COMMAND_FAILED", "the agent restarted but the host did not reboot", {
            hint: "the agent was restarted before the reboot happened; run the host update's reboot again",
          });
        return {};
      },
    };
  }

  /** The reboot command's result is journaled: reboot.json has done its job. */
  async settle(commandId: string): Promise<void> {
    const text = await readIfExists(this.intentPath);
    if (text !== null && (JSON.parse(text) as RebootIntent).commandId === commandId)
      await rm(this.intentPath, { force: true });
  }
}
