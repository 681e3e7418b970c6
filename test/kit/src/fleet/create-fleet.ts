import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { registerCleanup } from "../cleanup-registry.js";
import { run } from "../host-commands.js";
import { CONTROLLER_ROLE, startController } from "./controller-process.js";
import { notDestroyedError } from "./destroy-fleet.js";
import {
  environmentWithoutGild,
  type FleetContext,
  hostStatuses,
  recordFor,
  runGild,
  runGildJson,
  save,
  stopRole,
  waitOnline,
} from "./fleet-context.js";
import { launchAgent, makeFleetHost } from "./fleet-host.js";
import { type FleetState, type HostRecord, type PoolRecord, readFleetState } from "./fleet-state.js";
import { joinHost, prepareHostNetwork, preparePool } from "./host-setup.js";
import {
  bridgeName,
  freePort,
  listNetns,
  MAX_HOST_INDEX,
  makeBridge,
  netnsName,
  pickFreeSubnet,
  subnetHolders,
  vethName,
} from "./network.js";
import { mapLimit, settleAll } from "./parallel.js";
import { isRunning } from "./process-record.js";
import { gildCliPath } from "./repo-root.js";
import { stopFleetProcesses, teardownFleetSync } from "./teardown.js";
import type { Fleet, FleetHost, FleetOptions } from "./types.js";

/** How many hosts are made or joined at once: each join runs two CLI processes. */
const PARALLEL_HOSTS = 4;

async function idInUse(id: string): Promise<boolean> {
  const [netns, links] = await Promise.all([listNetns(), run("ip", ["-o", "link", "show"])]);
  return (
    netns.some((n) => n.startsWith(`gild-${id}-`)) ||
    links.stdout.includes(`${bridgeName(id)}:`) ||
    links.stdout.includes(`gv-${id}-`)
  );
}

async function chooseId(wanted: string | undefined): Promise<string> {
  if (wanted !== undefined) {
    if (!/^[0-9a-f]{4,6}$/.test(wanted))
      throw new Error(`fleet id "${wanted}" is not 4-6 lowercase hex digits`);
    if (await idInUse(wanted)) throw new Error(`fleet id ${wanted} is in use (a namespace or link has it)`);
    return wanted;
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    const id = randomBytes(3).toString("hex");
    if (!(await idInUse(id))) return id;
  }
  throw new Error("no unused fleet id after 20 tries");
}

/** Make the simulated hosts, controller and network of a local fleet; resolves when every host is online. */
export async function createFleet(options: FleetOptions): Promise<Fleet> {
  if (!Number.isInteger(options.hosts) || options.hosts < 0 || options.hosts > MAX_HOST_INDEX) {
    throw new Error(`hosts must be an integer from 0 to ${MAX_HOST_INDEX}, not ${options.hosts}`);
  }
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const cli = gildCliPath();
  const id = await chooseId(options.id);
  const subnet = await pickFreeSubnet();
  if (options.dir !== undefined && readFleetState(resolve(options.dir)))
    throw new Error(`a fleet already lives in ${resolve(options.dir)}: destroy it first (destroyFleetAt)`);
  const ownDir = options.dir === undefined || !existsSync(options.dir);
  const dir = options.dir === undefined ? mkdtempSync(join(tmpdir(), "gild-fleet-")) : resolve(options.dir);
  for (const sub of ["logs", "controller", "hosts"]) mkdirSync(join(dir, sub), { recursive: true });
  const compress = options.compress ?? true;
  const controllerArgs = [...(options.controllerArgs ?? [])];
  const bridgeAddress = `${subnet}.1`;
  const scheme = controllerArgs.includes("--insecure-dev") ? "http" : "https";

  const state: FleetState = {
    version: 1,
    id,
    dir,
    ownDir,
    createdAt: started,
    enter: options.enter ?? "nsenter",
    subnet,
    bridgeAddress,
    controllerPort: 0,
    controllerUrl: "",
    controllerDataDir: join(dir, "controller", "data"),
    controllerPool: join(dir, "controller", "pool"),
    controllerLogFile: join(dir, "logs", "controller.log"),
    controllerArgs,
    agentArgs: [...(options.agentArgs ?? [])],
    bridge: null,
    netns: [],
    veths: [],
    pools: [],
    processes: [],
    hosts: [],
  };
  const ctx: FleetContext = {
    state,
    cli,
    baseEnv: environmentWithoutGild(),
    cliEnv: { GILD_CONTROLLER_DIR: state.controllerDataDir },
    log,
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
  };
  save(ctx);
  let unregister = registerCleanup(`gild fleet ${id} in ${dir}`, () => {
    teardownFleetSync(state, log);
  });

  const hostRecord = (index: number): HostRecord => {
    const name = options.hostName?.(index) ?? `host-${index}`;
    if (state.hosts.some((h) => h.name === name)) throw new Error(`two hosts are named ${name}`);
    const hostDir = join(dir, "hosts", String(index));
    return {
      index,
      name,
      netns: netnsName(id, index),
      veth: vethName(id, index),
      address: `${subnet}.${10 + index}`,
      poolPath: join(hostDir, "pool"),
      stateDir: join(hostDir, "state"),
      logFile: join(dir, "logs", `${name}.log`),
      labels: { ...options.hostLabels?.(index) },
      agentArgs: [...(options.hostAgentArgs?.(index, `${subnet}.${10 + index}`) ?? [])],
      agentEnv: { ...options.hostAgentEnv?.(index) },
      ...(options.hostCli?.(index) ? { cli: options.hostCli(index) as string } : {}),
    };
  };
  const hostPool = (host: HostRecord): PoolRecord => ({
    backingFile: join(dir, "hosts", String(host.index), "pool.img"),
    mountPoint: host.poolPath,
    sizeMiB: options.poolSizeMiB ?? 2048,
  });
  /** Network (sequential: `ip netns add` sets up /run/netns on first use) and pool of new hosts. */
  const prepareHosts = async (hosts: HostRecord[]) => {
    for (const host of hosts) {
      state.hosts.push(host);
      save(ctx);
      await prepareHostNetwork(ctx, host);
      log(`${host.name}: network ${host.netns}, ${host.address}`);
    }
    await mapLimit(hosts, PARALLEL_HOSTS, async (host) => {
      await preparePool(ctx, hostPool(host), `gild-${id}-${host.index}`, compress);
      log(`${host.name}: pool ${host.poolPath}`);
    });
  };

  const fleetHosts: FleetHost[] = [];
  let destroying: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroying ??= (async () => {
      log(`destroying fleet ${id}`);
      const t0 = Date.now();
      await stopFleetProcesses(state, log);
      const problems = teardownFleetSync(state, log);
      unregister();
      if (problems.length > 0) throw notDestroyedError(id, dir, problems, "fleet.destroy()");
      log(`fleet ${id} destroyed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    })();
    return destroying;
  };

  try {
    log(`making bridge ${bridgeName(id)} (${bridgeAddress}/24) in ${dir}`);
    state.bridge = bridgeName(id);
    save(ctx);
    await makeBridge(state.bridge, bridgeAddress);
    // Another fleet may have picked the same /24 at the same moment: then both would be broken.
    const holders = (await subnetHolders(subnet)).filter((name) => name !== state.bridge);
    if (holders.length > 0) throw new Error(`${subnet}.0/24 was taken meanwhile (by ${holders.join(", ")})`);
    state.controllerPort = await freePort(bridgeAddress);
    state.controllerUrl = `${scheme}://${bridgeAddress}:${state.controllerPort}`;
    save(ctx);

    const firstHosts = Array.from({ length: options.hosts }, (_, i) => hostRecord(i + 1));
    const names = firstHosts.map((h) => h.name);
    if (new Set(names).size !== names.length) throw new Error(`host names repeat: ${names.join(", ")}`);
    // The controller starts while the hosts' networks and pools are made.
    await settleAll([
      (async () => {
        log(`making controller pool (${options.controllerPoolSizeMiB ?? 4096} MiB)`);
        await preparePool(
          ctx,
          {
            backingFile: join(dir, "controller", "pool.img"),
            mountPoint: state.controllerPool,
            sizeMiB: options.controllerPoolSizeMiB ?? 4096,
          },
          `gild-${id}-c`,
          compress,
        );
        if (options.controllerDataMiB !== undefined) {
          log(`making the controller's data filesystem (${options.controllerDataMiB} MiB)`);
          await preparePool(
            ctx,
            {
              backingFile: join(dir, "controller", "data.img"),
              mountPoint: state.controllerDataDir,
              sizeMiB: options.controllerDataMiB,
            },
            `gild-${id}-d`,
            false,
          );
        }
        await startController(ctx);
      })(),
      prepareHosts(firstHosts),
    ]);
    await mapLimit(firstHosts, PARALLEL_HOSTS, async (host) => {
      await joinHost(ctx, host);
      launchAgent(ctx, host);
    });
    if (firstHosts.length > 0) {
      await waitOnline(
        ctx,
        firstHosts.map((h) => h.name),
        { timeoutMs: ctx.startTimeoutMs },
      );
      log(`${firstHosts.map((h) => h.name).join(", ")}: online`);
    }
    for (const host of firstHosts) fleetHosts.push(makeFleetHost(ctx, host));
  } catch (err) {
    log(`fleet ${id} failed: ${(err as Error).message.split("\n")[0]}; undoing`);
    await destroy().catch((undoErr: Error) => log(undoErr.message));
    throw err;
  }
  if (options.persist) {
    unregister();
    unregister = () => undefined;
  }
  log(`fleet ${id} ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`);

  return {
    dir,
    id,
    controllerUrl: state.controllerUrl,
    controllerDataDir: state.controllerDataDir,
    controllerPool: state.controllerPool,
    controllerLogFile: state.controllerLogFile,
    bridgeAddress,
    env: { ...ctx.cliEnv },
    hosts: fleetHosts,
    gild: (args, opts) => runGild(ctx, args, opts),
    gildJson: <T>(args: string[]) => runGildJson<T>(ctx, args),
    controllerPid() {
      const record = recordFor(ctx, CONTROLLER_ROLE);
      return record && isRunning(record) ? record.pid : undefined;
    },
    startController: () => startController(ctx),
    stopController: (signal: NodeJS.Signals = "SIGTERM") => stopRole(ctx, CONTROLLER_ROLE, signal),
    killController: () => stopRole(ctx, CONTROLLER_ROLE, "SIGKILL"),
    async addHost() {
      const index = Math.max(0, ...state.hosts.map((h) => h.index)) + 1;
      if (index > MAX_HOST_INDEX) throw new Error(`a fleet holds at most ${MAX_HOST_INDEX} hosts`);
      const record = hostRecord(index);
      await prepareHosts([record]);
      await joinHost(ctx, record);
      const host = makeFleetHost(ctx, record);
      await host.startAgent();
      fleetHosts.push(host);
      return host;
    },
    waitHostsOnline: async (names = fleetHosts.map((h) => h.name), timeoutMs = ctx.startTimeoutMs) => {
      await waitOnline(ctx, names, { timeoutMs });
    },
    hostStatuses: () => hostStatuses(ctx),
    destroy,
  };
}
