import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type BusyboxBehaviour,
  buildBusyboxRoot,
  busyboxServeCommand,
  EXIT_AT_START_CODE,
  EXIT_AT_START_MESSAGE,
} from "./busybox-image.js";
import { freePort } from "./fleet/network.js";
import { waitFor } from "./wait.js";

// One table of the ways a container ends, and what every runtime driver must then report through
// status(), onExit listeners and stop(). Both drivers run it: the process driver in the test process,
// the systemd driver in a booted systemd container (where it runs this module through a fixture and
// hands back the observation). Plain data in, plain data out: no vitest here, so it runs anywhere.

/** The fields of @gild/runtime's ContainerStatus the cases read (the kit does not depend on runtime). */
export interface EndingStatus {
  app: string;
  generation: number;
  running: boolean;
  pid: number | null;
  exitCode: number | null;
  signal: string | null;
}

export interface EndingStop {
  graceful: boolean;
  exitCode: number | null;
}

/** @gild/runtime's ContainerSpec, as the cases fill it in. */
export interface EndingSpec {
  app: string;
  generation: number;
  rootfs: string;
  command: string[];
  env: Record<string, string>;
  binds: Array<{ source: string; target: string; readOnly?: boolean }>;
  logFile: string;
  stopTimeoutMs: number;
}

/** What the cases use of a RuntimeDriver. */
export interface EndingDriver {
  start(spec: EndingSpec): Promise<EndingStatus>;
  stop(app: string, generation: number, opts?: { timeoutMs?: number }): Promise<EndingStop>;
  status(app: string, generation: number): Promise<EndingStatus>;
  onExit(listener: (status: EndingStatus) => void): () => void;
}

/** How a container that ended is reported. */
export interface EndState {
  running: false;
  exitCode: number | null;
  signal: string | null;
}

export interface EndingCase {
  name: string;
  /** The busybox app's behaviour; `command` replaces its serve script when set. */
  behaviour: BusyboxBehaviour;
  command?: string[];
  stopTimeoutMs: number;
  /** After start: wait until it ends by itself, SIGKILL its init (as the OOM killer would), or stop() it. */
  action: "wait" | "kill-init" | "stop";
  expected: {
    /** The onExit report; null when none may come (an end that stop() caused is not reported). */
    onExit: EndState | null;
    /** status() once it ended, before and after stop(). */
    status: EndState;
    /** stop(): the one that ended it, or for an ended container the first one; a second says the same. */
    stop: EndingStop;
    /** Text the container's log holds. */
    log: string[];
    /** How long the stop() that ended it may take, in ms. */
    stopMs?: { min: number; max: number };
  };
}

// nspawn exits 1 when its container was killed by a signal ("Container ... terminated by signal KILL."):
// the signal itself is only in the log.
const KILLED_EXIT_CODE = 1;
const KILLED_LOG = "terminated by signal KILL";

export const ENDING_CASES: readonly EndingCase[] = [
  {
    name: "exits with status 3 at start",
    behaviour: "exit-at-start",
    stopTimeoutMs: 5_000,
    action: "wait",
    expected: {
      onExit: { running: false, exitCode: EXIT_AT_START_CODE, signal: null },
      status: { running: false, exitCode: EXIT_AT_START_CODE, signal: null },
      stop: { graceful: true, exitCode: EXIT_AT_START_CODE },
      log: [EXIT_AT_START_MESSAGE],
    },
  },
  {
    name: "exits 0 by itself",
    behaviour: "ok",
    command: ["/bin/true"],
    stopTimeoutMs: 5_000,
    action: "wait",
    expected: {
      onExit: { running: false, exitCode: 0, signal: null },
      status: { running: false, exitCode: 0, signal: null },
      stop: { graceful: true, exitCode: 0 },
      log: [],
    },
  },
  {
    name: "its init is killed by SIGKILL",
    behaviour: "ok",
    stopTimeoutMs: 5_000,
    action: "kill-init",
    expected: {
      onExit: { running: false, exitCode: KILLED_EXIT_CODE, signal: null },
      status: { running: false, exitCode: KILLED_EXIT_CODE, signal: null },
      stop: { graceful: true, exitCode: KILLED_EXIT_CODE },
      log: [KILLED_LOG],
    },
  },
  {
    name: "stops on SIGTERM",
    behaviour: "ok",
    stopTimeoutMs: 5_000,
    action: "stop",
    expected: {
      onExit: null,
      status: { running: false, exitCode: 0, signal: null },
      stop: { graceful: true, exitCode: 0 },
      log: ["serve: stopped on SIGTERM"],
      stopMs: { min: 0, max: 4_000 },
    },
  },
  {
    name: "ignores SIGTERM and is killed after the stop timeout",
    behaviour: "ignore-sigterm",
    stopTimeoutMs: 1_500,
    action: "stop",
    expected: {
      onExit: null,
      status: { running: false, exitCode: KILLED_EXIT_CODE, signal: null },
      stop: { graceful: false, exitCode: null },
      log: [KILLED_LOG],
      // The stop timeout, then the kill: nspawn ends within tens of ms of its init.
      stopMs: { min: 1_500, max: 1_500 + 4_000 },
    },
  },
];

/** What a driver reported while one case ran. */
export interface EndingObservation {
  started: EndingStatus;
  /** Every onExit report for the case's container. */
  exits: EndingStatus[];
  /** status() once it ended. */
  status: EndingStatus;
  stop: EndingStop;
  stopMs: number;
  stopAgain: EndingStop;
  statusAfterStop: EndingStatus;
  log: string;
}

export interface ObserveOptions {
  /** A scratch directory of the caller's. */
  dir: string;
  /** @gild/runtime's findContainerInit. */
  findInit: (nspawnPid: number) => Promise<number | null>;
  /** How long to keep listening for an onExit report that must not come (a few exit-watch periods). */
  quietMs: number;
}

/** Run one case against a driver; the container is stopped again whatever happens. */
export async function observeEnding(
  driver: EndingDriver,
  name: string,
  options: ObserveOptions,
): Promise<EndingObservation> {
  const ending = ENDING_CASES.find((c) => c.name === name);
  if (!ending) throw new Error(`no ending case named "${name}"`);
  const app = `end-${ENDING_CASES.indexOf(ending) + 1}`;
  const rootfs = join(options.dir, app, "rootfs");
  await mkdir(rootfs, { recursive: true });
  await buildBusyboxRoot(rootfs, { behaviour: ending.behaviour });
  const spec: EndingSpec = {
    app,
    generation: 1,
    rootfs,
    command: ending.command ?? busyboxServeCommand(await freePort()),
    env: {},
    binds: [],
    logFile: join(options.dir, "logs", `${app}.log`),
    stopTimeoutMs: ending.stopTimeoutMs,
  };
  const log = () => readFile(spec.logFile, "utf8").catch(() => "");
  const exits: EndingStatus[] = [];
  const unsubscribe = driver.onExit((status) => {
    if (status.app === app) exits.push(status);
  });
  try {
    const started = await driver.start(spec);
    const ended = async () => !(await driver.status(app, 1)).running;
    let stop: EndingStop | undefined;
    let stopMs = 0;
    if (ending.action === "wait") {
      await waitFor(ended, { timeoutMs: 15_000, what: `${app} to end by itself` });
    } else {
      // The serve script prints this once its SIGTERM trap is set: a SIGTERM before would be lost.
      await waitFor(async () => (await log()).includes("serve: listening"), {
        timeoutMs: 15_000,
        what: `${app} to listen`,
      });
      if (ending.action === "kill-init") {
        const init = started.pid === null ? null : await options.findInit(started.pid);
        if (init === null) throw new Error(`${app} has no init to kill`);
        process.kill(init, "SIGKILL");
        await waitFor(ended, { timeoutMs: 15_000, what: `${app} to end after its init was killed` });
      } else {
        const t0 = Date.now();
        stop = await driver.stop(app, 1);
        stopMs = Date.now() - t0;
      }
    }
    if (ending.expected.onExit) {
      // A report that never comes is not an error here: the observation shows none, the test says so.
      await waitFor(() => exits.length > 0, { timeoutMs: 5_000, what: `the onExit report of ${app}` }).catch(
        () => undefined,
      );
    } else await sleep(options.quietMs);
    const status = await driver.status(app, 1);
    stop ??= await driver.stop(app, 1);
    const stopAgain = await driver.stop(app, 1);
    const statusAfterStop = await driver.status(app, 1);
    return { started, exits, status, stop, stopMs, stopAgain, statusAfterStop, log: await log() };
  } finally {
    unsubscribe();
    await driver.stop(app, 1, { timeoutMs: 2_000 });
  }
}
