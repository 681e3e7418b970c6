import { run } from "../host-commands.js";
import { type FleetContext, runGildJson, save } from "./fleet-context.js";
import { execInHost } from "./fleet-host.js";
import type { HostRecord, PoolRecord } from "./fleet-state.js";
import { makeLoopPool } from "./loop-pool.js";
import { makeHostNetwork } from "./network.js";

/** Make a host's namespace and network, recording each before it is made. */
export async function prepareHostNetwork(ctx: FleetContext, host: HostRecord): Promise<void> {
  const { state } = ctx;
  if (!state.bridge) throw new Error("the fleet has no bridge");
  state.netns.push(host.netns);
  save(ctx);
  await run("ip", ["netns", "add", host.netns]);
  state.veths.push(host.veth);
  save(ctx);
  await makeHostNetwork({
    netns: host.netns,
    veth: host.veth,
    bridge: state.bridge,
    address: host.address,
    gateway: state.bridgeAddress,
  });
}

/** Make a pool, recorded before it is made. */
export async function preparePool(
  ctx: FleetContext,
  pool: PoolRecord,
  label: string,
  compress: boolean,
): Promise<void> {
  ctx.state.pools.push(pool);
  save(ctx);
  await makeLoopPool(pool, { label, compress });
}

/** A one-time token, then `gild agent join` inside the host's namespace. */
export async function joinHost(ctx: FleetContext, host: HostRecord): Promise<void> {
  const { token } = await runGildJson<{ token: string }>(ctx, ["token", "create"]);
  const labels = Object.entries(host.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
  const joined = await execInHost(ctx, host, [
    process.execPath,
    host.cli ?? ctx.cli,
    "agent",
    "join",
    ctx.state.controllerUrl,
    token,
    "--name",
    host.name,
    ...labels,
    "--state-dir",
    host.stateDir,
  ]);
  if (joined.code !== 0) {
    throw new Error(`${host.name}: gild agent join exited with ${joined.code}: ${joined.stderr.trim()}`);
  }
  ctx.log(`${host.name}: joined`);
}
