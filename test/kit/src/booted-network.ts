import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { registerCleanup } from "./cleanup-registry.js";
import { bridgeName, makeHostNetwork } from "./fleet/network.js";
import { run, tryRunSync } from "./host-commands.js";

// The network of a booted container joined to a local fleet: a namespace of its own with a veth on the
// fleet's bridge (it reaches the controller at the bridge address and nothing else), and, for what must
// come from the Internet (the installer's npm registry), an HTTP CONNECT proxy on the bridge address.

export interface BridgedNetns {
  /** For systemd-nspawn --network-namespace-path. */
  path: string;
  name: string;
  address: string;
  /** Delete the namespace and the veth. Safe to call twice. */
  destroy(): void;
}

function undoNetns(name: string, veth: string): void {
  tryRunSync("ip", ["link", "del", veth]);
  tryRunSync("ip", ["netns", "del", name]);
}

/** A network namespace with eth0 on the fleet's bridge at `<subnet>.<hostByte>`, default route via it. */
export async function bridgedNetns(fleet: { id: string; bridgeAddress: string }, hostByte: number) {
  const hex = randomBytes(3).toString("hex");
  const name = `gild-bt-${hex}`;
  const veth = `gvb-${hex}`;
  const subnet = fleet.bridgeAddress.split(".").slice(0, 3).join(".");
  const address = `${subnet}.${hostByte}`;
  const unregister = registerCleanup(`network namespace ${name}`, () => undoNetns(name, veth));
  try {
    await run("ip", ["netns", "add", name]);
    await makeHostNetwork({
      netns: name,
      veth,
      bridge: bridgeName(fleet.id),
      address,
      gateway: fleet.bridgeAddress,
    });
  } catch (err) {
    undoNetns(name, veth);
    unregister();
    throw err;
  }
  const netns: BridgedNetns = {
    path: `/run/netns/${name}`,
    name,
    address,
    destroy() {
      undoNetns(name, veth);
      unregister();
    },
  };
  return netns;
}

export interface ConnectProxy {
  /** http://address:port, for npm's https-proxy. */
  url: string;
  /** host:port of every tunnel asked for, in order. */
  tunnels: string[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy that only tunnels (CONNECT) to port 443: TLS end to end, nothing else relayed. Listens
 * on `address`, a port of its choosing.
 */
export function startConnectProxy(address: string): Promise<ConnectProxy> {
  const sockets = new Set<Socket>();
  const tunnels: string[] = [];
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const server: Server = createServer((client) => {
    track(client);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > 16_384) client.destroy();
        return;
      }
      client.off("data", onData);
      const m = /^CONNECT ([A-Za-z0-9.-]+):(\d+) HTTP\/1\.[01]\r\n/.exec(head.subarray(0, end).toString());
      if (!m?.[1] || m[2] !== "443") {
        client.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n");
        return;
      }
      tunnels.push(`${m[1]}:${m[2]}`);
      const upstream = connect(443, m[1], () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        const rest = head.subarray(end + 4);
        if (rest.length > 0) upstream.write(rest);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      track(upstream);
      upstream.once("error", () => client.destroy());
      client.once("close", () => upstream.destroy());
      upstream.once("close", () => client.destroy());
    };
    client.on("data", onData);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, address, () => {
      const info = server.address();
      const port = typeof info === "object" && info ? info.port : 0;
      resolve({
        url: `http://${address}:${port}`,
        tunnels,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
