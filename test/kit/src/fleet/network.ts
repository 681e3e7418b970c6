import { randomInt } from "node:crypto";
import { createServer } from "node:net";
import { run } from "../host-commands.js";
import type { NetnsEnter } from "./fleet-state.js";

// Interface names must fit IFNAMSIZ - 1 = 15 characters: "gv-" + 6 hex + "-" + 3 digits is 13.
export const bridgeName = (id: string): string => `gb-${id}`;
export const vethName = (id: string, index: number): string => `gv-${id}-${index}`;
export const netnsName = (id: string, index: number): string => `gild-${id}-${index}`;
/** Host n gets x.y.z.(10 + n). */
export const MAX_HOST_INDEX = 244;

function ipToInt(ip: string): number {
  return ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

/** IPv4 networks in use on this machine (addresses and routes), as [first, last] integer ranges. */
async function usedRanges(): Promise<Array<{ first: number; last: number; text: string }>> {
  const [addrs, routes] = await Promise.all([
    run("ip", ["-o", "-4", "addr", "show"]),
    run("ip", ["-o", "-4", "route", "show", "table", "all"]),
  ]);
  const out: Array<{ first: number; last: number; text: string }> = [];
  const cidr = /\b(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?\b/g;
  const lines = [
    ...addrs.stdout.split("\n").map((l) => /inet (\S+)/.exec(l)?.[1]),
    ...routes.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]),
  ];
  for (const token of lines) {
    if (!token || token === "default") continue;
    cidr.lastIndex = 0;
    const m = cidr.exec(token);
    if (!m?.[1]) continue;
    const bits = m[2] === undefined ? 32 : Number(m[2]);
    if (bits === 0) continue; // a default route, not a network in use
    const size = 2 ** (32 - bits);
    const first = Math.floor(ipToInt(m[1]) / size) * size;
    out.push({ first, last: first + size - 1, text: token });
  }
  return out;
}

/** Interfaces that have an address in `<subnet>.0/24` (ours should be the only one). */
export async function subnetHolders(subnet: string): Promise<string[]> {
  const { stdout } = await run("ip", ["-o", "-4", "addr", "show"]);
  const first = ipToInt(`${subnet}.0`);
  const holders: string[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(line);
    if (!m?.[1] || !m[2]) continue;
    const size = 2 ** (32 - Number(m[3]));
    const start = Math.floor(ipToInt(m[2]) / size) * size;
    if (start <= first + 255 && start + size - 1 >= first) holders.push(m[1]);
  }
  return holders;
}

/** A random /24 in 10.200.0.0-10.254.255.0 that no address or route here overlaps, as "10.x.y". */
export async function pickFreeSubnet(): Promise<string> {
  const used = await usedRanges();
  for (let attempt = 0; attempt < 200; attempt++) {
    const subnet = `10.${randomInt(200, 255)}.${randomInt(0, 256)}`;
    const first = ipToInt(`${subnet}.0`);
    if (!used.some((r) => r.first <= first + 255 && r.last >= first)) return subnet;
  }
  throw new Error("no free /24 in 10.200.0.0/16-10.254.255.0/24 after 200 tries");
}

/** Names of network namespaces (`ip netns list`). */
export async function listNetns(): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

/** The bridge with the controller's address on it, up. */
export async function makeBridge(bridge: string, address: string): Promise<void> {
  await run("ip", ["link", "add", bridge, "type", "bridge"]);
  await run("ip", ["addr", "add", `${address}/24`, "dev", bridge]);
  await run("ip", ["link", "set", bridge, "up"]);
}

/**
 * A host's network: the namespace, a veth pair whose root end is on the bridge and whose other end is
 * made inside the namespace as eth0 (no temporary name in the root namespace), loopback up, default
 * route via the bridge. The namespace must already exist.
 */
export async function makeHostNetwork(options: {
  netns: string;
  veth: string;
  bridge: string;
  address: string;
  gateway: string;
}): Promise<void> {
  const { netns, veth, bridge, address, gateway } = options;
  await run("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
  await run("ip", ["link", "set", veth, "master", bridge]);
  await run("ip", ["link", "set", veth, "up"]);
  await run("ip", ["-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
  await run("ip", ["-n", netns, "link", "set", "eth0", "up"]);
  await run("ip", ["-n", netns, "link", "set", "lo", "up"]);
  await run("ip", ["-n", netns, "route", "add", "default", "via", gateway]);
}

/**
 * The command line that runs argv inside a network namespace. "nsenter" switches only the network
 * namespace; "ip-netns-exec" also unshares the mount namespace and remounts /sys, which drops the
 * cgroup mounts under /sys/fs/cgroup on machines that mount them there (systemd-nspawn then fails).
 */
export function enterNetns(enter: NetnsEnter, netns: string, argv: readonly string[]): [string, string[]] {
  if (argv.length === 0) throw new Error("no program to run in the namespace");
  if (enter === "ip-netns-exec") return ["ip", ["netns", "exec", netns, ...argv]];
  return ["nsenter", [`--net=/run/netns/${netns}`, "--", ...argv]];
}

/** A TCP port nothing listens on at `address` right now (bound to 0, then released). */
export function freePort(address = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, address, () => {
      const info = server.address();
      const port = typeof info === "object" && info ? info.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error(`no free port on ${address}`))));
    });
  });
}
