import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { joinController } from "@gild/agent";
import { requestJson, tlsOptions } from "@gild/api-client";
import {
  type AppInstance,
  CloseCode,
  type Command,
  type ControllerMessage,
  decodeAgentMessage,
  decodeControllerMessage,
  encodeAgentMessage,
  encodeControllerMessage,
  type Inventory,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import { waitFor } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestController, type TestController } from "./support.js";

interface Peer {
  ws: WebSocket;
  frames: ControllerMessage[];
  closed: Promise<{ code: number; reason: string; at: number }>;
  opened: Promise<void>;
}

/** The refusal a peer got, if any. */
function refusalOf(peer: Peer) {
  const frame = peer.frames.find((f) => "refusal" in f);
  return frame && "refusal" in frame ? frame.refusal : undefined;
}

describeWith(["root", "btrfs"], "control channel", () => {
  let c: TestController;
  const credentials = new Map<string, string>();

  async function joinHost(name: string): Promise<string> {
    const res = await c.controller.app.inject({
      method: "POST",
      url: "/v1/tokens",
      headers: { authorization: `Bearer ${c.adminToken}` },
      payload: {},
    });
    const stateDir = join(c.fs.dir, `agent-${name}`);
    await joinController({
      controllerUrl: c.url,
      token: res.json<{ token: string }>().token,
      name,
      labels: {},
      stateDir,
    });
    const credential = readFileSync(`${stateDir}/credential`, "utf8").trim();
    credentials.set(name, credential);
    return credential;
  }

  function open(credential: string | undefined, path = "/v1/agent"): Peer {
    const ws = new WebSocket(`${c.url.replace("https", "wss")}${path}`, {
      ...tlsOptions({ caPem: c.tls.caPem }),
      headers: credential ? { authorization: `Bearer ${credential}` } : {},
      perMessageDeflate: false,
      maxPayload: 8 * MAX_FRAME_BYTES,
    });
    const frames: Peer["frames"] = [];
    ws.on("message", (data) => frames.push(decodeControllerMessage(data as Buffer, PROTOCOL_VERSION)));
    ws.on("error", () => undefined);
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })),
    );
    const opened = new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) =>
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
      );
    });
    opened.catch(() => undefined);
    return { ws, frames, closed, opened };
  }

  async function hello(peer: Peer, name: string, version = PROTOCOL_VERSION): Promise<void> {
    await peer.opened;
    const hello = {
      protocolVersion: version,
      hostId: "",
      hostName: name,
      agentVersion: "test",
      kernelVersion: "",
      btrfsProgsVersion: "",
      labels: {},
      facts: {},
      maxStreamVersion: 1,
    };
    peer.ws.send(encodeAgentMessage({ hello }, PROTOCOL_VERSION, 1));
  }

  async function online(name: string): Promise<boolean> {
    const res = await c.controller.app.inject({
      method: "GET",
      url: "/v1/hosts",
      headers: { authorization: `Bearer ${c.adminToken}` },
    });
    return (
      res.json<{ hosts: Array<{ name: string; state: string }> }>().hosts.find((h) => h.name === name)
        ?.state === "online"
    );
  }

  beforeAll(async () => {
    // Pings every second: a peer that stops answering is dropped within seconds.
    c = await startTestController({ heartbeatInterval: "1s" });
    await joinHost("steady");
    await joinHost("victim");
    await joinHost("fuzzer");
    await joinHost("sleeper");
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it("refuses upgrades without a credential, with a garbage one, or with an unknown one", async () => {
    for (const credential of [undefined, "garbage", `h_0123456789abcdef.${"A".repeat(43)}`]) {
      const peer = open(credential);
      await expect(peer.opened).rejects.toMatchObject({ status: 401 });
    }
  });

  it("greets a valid agent with Welcome and marks it online", async () => {
    const peer = open(credentials.get("steady"));
    await hello(peer, "steady");
    await waitFor(() => peer.frames.find((f) => "welcome" in f), { what: "Welcome" });
    await waitFor(() => online("steady"), { what: "steady online" });
    peer.ws.close();
    await peer.closed;
  });

  it("refuses an incompatible protocol version with a coded refusal, not a crash", async () => {
    const peer = open(credentials.get("fuzzer"));
    await hello(peer, "fuzzer", PROTOCOL_VERSION + 7);
    const closed = await peer.closed;
    expect(closed.code).toBe(CloseCode.protocolVersion);
    expect(refusalOf(peer)?.code).toBe("GILD_PROTO_VERSION");
    // An agent older than the one before this version is told to upgrade itself.
    const old = open(credentials.get("fuzzer"));
    await hello(old, "fuzzer", PROTOCOL_VERSION - 2);
    expect((await old.closed).code).toBe(CloseCode.protocolVersion);
    expect(refusalOf(old)).toMatchObject({
      code: "GILD_PROTO_VERSION",
      hint: expect.stringContaining("upgrade the agent"),
    });
  });

  it("closes connections that send malformed, unknown or oversized frames, and keeps serving the others", async () => {
    // A well-behaved agent, connected through all of the abuse below: the controller keeps serving it.
    const bystander = open(credentials.get("steady"));
    await hello(bystander, "steady");
    await waitFor(() => online("steady"), { what: "steady online" });
    const credential = credentials.get("fuzzer") as string;
    // Oversized: more than 1 MiB in one frame.
    const big = open(credential);
    await hello(big, "fuzzer");
    await big.opened;
    big.ws.send(randomBytes(MAX_FRAME_BYTES + 10));
    // ws closes such a socket by itself; the close still carries the coded reason and a Refusal.
    expect(await big.closed).toMatchObject({ code: CloseCode.tooLarge, reason: "GILD_PROTO_TOO_LARGE" });
    expect(refusalOf(big)?.code).toBe("GILD_PROTO_TOO_LARGE");

    // One message in 20,000 fragments of one byte.
    const fragments = open(credential);
    await hello(fragments, "fuzzer");
    await fragments.opened;
    for (let i = 0; i < 20_000; i++) fragments.ws.send(Buffer.alloc(1), { fin: false });
    expect(await fragments.closed).toMatchObject({
      code: CloseCode.policyViolation,
      reason: "GILD_PROTO_MALFORMED",
    });
    expect(refusalOf(fragments)).toMatchObject({
      code: "GILD_PROTO_MALFORMED",
      message: expect.stringContaining("fragments"),
    });

    // Malformed and unknown frames, before and after Hello, text frames too.
    // Random bytes that happen to form a valid message are served like any other; only the rest must
    // end the connection.
    const isValidFrame = (b: Uint8Array) => {
      try {
        decodeAgentMessage(b, PROTOCOL_VERSION);
        return true;
      } catch {
        return false;
      }
    };
    const payloads = fc
      .sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), 40)
      .filter((b) => !isValidFrame(b))
      .slice(0, 25)
      .map((b) => Buffer.from(b));
    // A frame only the controller sends.
    const command = { commandId: "x", removeApp: { name: "x", purgeData: false } } as Command;
    payloads.push(Buffer.from(encodeControllerMessage({ command }, PROTOCOL_VERSION, 1)));
    for (const [i, payload] of payloads.entries()) {
      const peer = open(credential);
      if (i % 2 === 0) await hello(peer, "fuzzer");
      await peer.opened;
      peer.ws.send(payload, { binary: i % 5 !== 0 });
      const closed = await peer.closed;
      const what = `payload ${i} (${payload.length} bytes, binary ${i % 5 !== 0}) closed with ${closed.code} ${closed.reason}`;
      expect([CloseCode.policyViolation, CloseCode.tooLarge], what).toContain(closed.code);
      expect(closed.reason, what).toMatch(/^GILD_[A-Z_]+$/);
      expect(refusalOf(peer)?.code, what).toBe(closed.reason);
    }

    // Unauthenticated garbage straight at the TLS port, and at the TCP port below TLS.
    const url = new URL(c.url);
    await new Promise<void>((resolve) => {
      const socket = tlsConnect(
        { host: url.hostname, port: Number(url.port), ca: c.tls.caPem, checkServerIdentity: () => undefined },
        () => {
          socket.write(randomBytes(64 * 1024));
          socket.end();
        },
      );
      socket.resume();
      socket.on("error", () => resolve());
      socket.on("close", () => resolve());
    });

    await new Promise<void>((resolve) => {
      const socket = netConnect({ host: url.hostname, port: Number(url.port) }, () => {
        socket.write(randomBytes(64 * 1024));
        socket.end();
      });
      socket.resume();
      socket.on("error", () => resolve());
      socket.on("close", () => resolve());
    });

    // The controller still answers over the real socket, and its other agent is still connected.
    expect(await requestJson("GET", `${c.url}/healthz`, undefined, { caPem: c.tls.caPem })).toMatchObject({
      ok: true,
    });
    expect(await online("steady")).toBe(true);
    expect(bystander.ws.readyState).toBe(WebSocket.OPEN);
    bystander.ws.close();
    await bystander.closed;
  });

  it("drops a live socket within 1 s when its host is removed, and refuses it afterwards", async () => {
    const peer = open(credentials.get("victim"));
    await hello(peer, "victim");
    await waitFor(() => online("victim"), { what: "victim online" });
    const removedAt = Date.now();
    const res = await c.controller.app.inject({
      method: "DELETE",
      url: "/v1/hosts/victim",
      headers: { authorization: `Bearer ${c.adminToken}` },
    });
    expect(res.statusCode).toBe(200);
    const closed = await peer.closed;
    expect(closed.code).toBe(CloseCode.revoked);
    expect(closed.at - removedAt).toBeLessThan(1000);
    expect(refusalOf(peer)?.code).toBe("GILD_CREDENTIAL_INVALID");
    const again = open(credentials.get("victim"));
    await expect(again.opened).rejects.toMatchObject({ status: 401 });
  });

  it("keeps a host online only while a session that said Hello answers pings; a silent connection with its credential changes nothing", async () => {
    const credential = credentials.get("sleeper") as string;
    const agent = open(credential);
    await hello(agent, "sleeper");
    await waitFor(() => online("sleeper"), { what: "sleeper online" });
    // Like an agent stopped with SIGSTOP: its socket is read no more, so no pong comes back.
    agent.ws.pause();
    // Another connection with the same credential that never says Hello.
    const silent = open(credential);
    await silent.opened;
    await waitFor(async () => !(await online("sleeper")), { what: "sleeper offline", timeoutMs: 8_000 });
    // The silent one is closed by the hello timeout, and the host stays offline.
    expect(await silent.closed).toMatchObject({
      code: CloseCode.policyViolation,
      reason: "GILD_PROTO_MALFORMED",
    });
    expect(refusalOf(silent)?.message).toMatch(/no Hello/);
    expect(await online("sleeper")).toBe(false);
    agent.ws.terminate();
  }, 30_000);

  it("pings every session once per heartbeat interval, the sessions in turn rather than all at once", async () => {
    // Three sessions made one after the other take three slots of the interval (a tick every 50 ms at
    // 1 s): each is pinged in its own tick. Pinged all at once, 10,000 hosts held the loop ~180 ms.
    const names = ["ping-a", "ping-b", "ping-c"];
    for (const name of names) if (!credentials.has(name)) await joinHost(name);
    const peers = names.map((name) => open(credentials.get(name)));
    const pings = peers.map(() => [] as number[]);
    for (const [i, peer] of peers.entries()) peer.ws.on("ping", () => pings[i]?.push(performance.now()));
    await Promise.all(peers.map((peer, i) => hello(peer, names[i] as string)));
    await waitFor(() => pings.every((p) => p.length >= 2), {
      what: "two pings for each session",
      timeoutMs: 5_000,
    });
    for (const p of pings) {
      // Once per interval (1 s), not more often: the gap is at least most of it.
      expect((p[1] as number) - (p[0] as number)).toBeGreaterThan(800);
    }
    const firsts = pings.map((p) => p[0] as number).sort((a, b) => a - b);
    for (let i = 1; i < firsts.length; i++)
      expect((firsts[i] as number) - (firsts[i - 1] as number)).toBeGreaterThan(25);
    for (const peer of peers) peer.ws.close();
    await Promise.all(peers.map((peer) => peer.closed));
  }, 30_000);

  it("lets a new session replace the live one only when it says Hello, and bounds connections waiting for theirs", async () => {
    const credential = credentials.get("sleeper") as string;
    const first = open(credential);
    await hello(first, "sleeper");
    await waitFor(() => first.frames.find((f) => "welcome" in f), { what: "Welcome" });
    await waitFor(() => online("sleeper"), { what: "sleeper online" });
    // Four connections may wait for their Hello; a fifth is told to come back later.
    const waiting = [open(credential), open(credential), open(credential), open(credential)];
    await Promise.all(waiting.map((p) => p.opened));
    const fifth = open(credential);
    expect(await fifth.closed).toMatchObject({ code: CloseCode.tryAgainLater, reason: "GILD_UNAVAILABLE" });
    // None of them replaced the live session: it still gets answers.
    const seen = first.frames.length;
    first.ws.ping();
    await new Promise<void>((resolve) => first.ws.once("pong", () => resolve()));
    expect(first.frames.length).toBe(seen);
    expect(await online("sleeper")).toBe(true);
    // One says Hello: it takes over, the old session is closed as replaced, the host never went offline.
    const offline: string[] = [];
    c.controller.services.hub.addListener({ onOffline: (hostId) => offline.push(hostId) });
    const [next, ...rest] = waiting as [Peer, ...Peer[]];
    await hello(next, "sleeper");
    await waitFor(() => next.frames.find((f) => "welcome" in f), { what: "Welcome on the new session" });
    expect((await first.closed).code).toBe(CloseCode.replaced);
    expect(await online("sleeper")).toBe(true);
    for (const p of rest) p.ws.terminate();
    await Promise.all(rest.map((p) => p.closed));
    expect(await online("sleeper")).toBe(true);
    expect(offline).toEqual([]);
    next.ws.close();
  }, 30_000);

  describe("inventories", () => {
    const uuid = () => randomUUID();
    function inventory(overrides: Partial<Inventory> = {}): Inventory {
      return {
        images: [{ line: "php", version: 2, uuid: uuid(), receivedUuid: uuid() }],
        poolFreeBytes: 2 ** 30,
        poolTotalBytes: 2 ** 31,
        apps: [
          {
            name: "site",
            generation: 3,
            imageLine: "php",
            imageVersion: 2,
            state: "running",
            health: "healthy",
            healthDetail: "HTTP 200",
            healthSinceMs: Date.now(),
            healthyForMs: 1000,
            previousGeneration: 2,
            previousImageVersion: 1,
            generations: [2, 3],
            specHash: "0123456789abcdef",
            codeLine: "",
            codeVersion: 0,
            previousCodeVersion: 0,
          },
        ],
        reportedAtMs: Date.now(),
        facts: { updates: "3", securityUpdates: "1" },
        ...overrides,
      };
    }

    async function stored(name: string) {
      const res = await c.controller.app.inject({
        method: "GET",
        url: "/v1/hosts",
        headers: { authorization: `Bearer ${c.adminToken}` },
      });
      return res
        .json<{
          hosts: Array<{
            name: string;
            images: unknown[];
            apps: Array<{ name: string }>;
            facts: Record<string, string>;
          }>;
        }>()
        .hosts.find((h) => h.name === name);
    }

    async function session(name: string): Promise<Peer> {
      const credential = credentials.get(name) ?? (await joinHost(name));
      const peer = open(credential);
      await hello(peer, name);
      await waitFor(() => peer.frames.find((f) => "welcome" in f), { what: `Welcome for ${name}` });
      return peer;
    }

    it("refuses one with hostile names, a wrong count or an impossible version, with a coded Refusal, storing none of it", async () => {
      const good = await session("inventoried");
      good.ws.send(encodeAgentMessage({ inventory: inventory() }, PROTOCOL_VERSION, 2));
      await waitFor(async () => (await stored("inventoried"))?.apps[0]?.name === "site", { what: "stored" });
      // Facts that change while connected come with the inventory, over the Hello's.
      expect((await stored("inventoried"))?.facts).toMatchObject({ updates: "3", securityUpdates: "1" });
      good.ws.close();
      await good.closed;
      const many = Array.from({ length: 9000 }, (_, i) => ({
        line: `fake-${i}`,
        version: 1,
        uuid: uuid(),
        receivedUuid: "",
      }));
      const base = inventory();
      const app = base.apps[0] as AppInstance;
      const hostile: Array<[string, Inventory]> = [
        [
          "images[0].line",
          inventory({ images: [{ line: "../../etc/0-1", version: 1, uuid: uuid(), receivedUuid: "" }] }),
        ],
        [
          "images[0].version",
          inventory({ images: [{ line: "php", version: 4294967295, uuid: uuid(), receivedUuid: "" }] }),
        ],
        ["apps[0].name", inventory({ apps: [{ ...app, name: "../../etc" }] })],
        ["images: 9000 entries", inventory({ images: many })],
        [
          "apps[0].generations",
          inventory({ apps: [{ ...app, generations: Array.from({ length: 500 }, (_, i) => i + 1) }] }),
        ],
        ["apps[0].healthDetail", inventory({ apps: [{ ...app, healthDetail: "x".repeat(70_000) }] })],
        ["apps[0].codeLine", inventory({ apps: [{ ...app, codeLine: "../code", codeVersion: 1 }] })],
        ["apps[0].codeVersion", inventory({ apps: [{ ...app, codeVersion: 3 }] })],
        [
          "facts: 100 entries",
          inventory({ facts: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`f${i}`, "x"])) }),
        ],
        ["is not a fact name", inventory({ facts: { "../x": "1" } })],
      ];
      for (const [path, bad] of hostile) {
        const peer = await session("inventoried");
        peer.ws.send(encodeAgentMessage({ inventory: bad }, PROTOCOL_VERSION, 2));
        const closed = await peer.closed;
        expect(closed, path).toMatchObject({
          code: CloseCode.policyViolation,
          reason: "GILD_INVENTORY_INVALID",
        });
        expect(refusalOf(peer)?.message, path).toContain(path);
      }
      // What was stored before is all there is.
      const host = await stored("inventoried");
      expect(host?.apps.map((a) => a.name)).toEqual(["site"]);
      expect(host?.images).toHaveLength(1);
      // And removing a real image is not refused for an app that never existed.
      expect(JSON.stringify(host)).not.toContain("etc");
    });

    it("handles at most one inventory per second per host, the newest of those that came meanwhile", async () => {
      const peer = await session("chatty");
      const handled: number[] = [];
      c.controller.services.hub.addListener({
        onInventory: (_hostId, inv) => handled.push(inv.poolFreeBytes),
      });
      const started = Date.now();
      for (let i = 1; i <= 200; i++)
        peer.ws.send(
          encodeAgentMessage({ inventory: inventory({ poolFreeBytes: i * 1024 }) }, PROTOCOL_VERSION, i + 1),
        );
      // The last one is always handled, and only a few in between.
      await waitFor(() => handled.includes(200 * 1024), { what: "the newest inventory handled" });
      const elapsed = Date.now() - started;
      expect(handled.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 2);
      expect(handled.at(-1)).toBe(200 * 1024);
      peer.ws.close();
      await peer.closed;
    });

    it("handles a waiting inventory before a command status that comes after it", async () => {
      const peer = await session("ordered");
      const seen: string[] = [];
      c.controller.services.hub.addListener({
        onInventory: (_hostId, inv) => seen.push(`inventory ${inv.poolFreeBytes}`),
        onCommandStatus: (_hostId, status) => seen.push(`status ${status.commandId}`),
      });
      peer.ws.send(encodeAgentMessage({ inventory: inventory({ poolFreeBytes: 1 }) }, PROTOCOL_VERSION, 2));
      peer.ws.send(encodeAgentMessage({ inventory: inventory({ poolFreeBytes: 2 }) }, PROTOCOL_VERSION, 3));
      const status = {
        commandId: "no-such-command",
        state: "succeeded" as const,
        progress: null,
        error: null,
        replayed: false,
      };
      peer.ws.send(encodeAgentMessage({ commandStatus: status }, PROTOCOL_VERSION, 4));
      await waitFor(() => seen.includes("status no-such-command"), { what: "the status handled" });
      expect(seen).toEqual(["inventory 1", "inventory 2", "status no-such-command"]);
      peer.ws.close();
      await peer.closed;
    });

    it("handles the inventory that follows a command's result at once: a wave may wait for it", async () => {
      const peer = await session("answering");
      const seen: number[] = [];
      c.controller.services.hub.addListener({
        onInventory: (_hostId, inv) => seen.push(inv.poolFreeBytes),
      });
      peer.ws.send(encodeAgentMessage({ inventory: inventory({ poolFreeBytes: 1 }) }, PROTOCOL_VERSION, 2));
      await waitFor(() => seen.includes(1), { what: "the first inventory handled" });
      // Held back by the interval, on a clock a minute behind: without the answer it would wait that long.
      c.clock.offsetMs -= 60_000;
      try {
        peer.ws.send(encodeAgentMessage({ inventory: inventory({ poolFreeBytes: 2 }) }, PROTOCOL_VERSION, 3));
        const status = {
          commandId: "no-such-command",
          state: "succeeded" as const,
          progress: null,
          error: null,
          replayed: false,
        };
        peer.ws.send(encodeAgentMessage({ commandStatus: status }, PROTOCOL_VERSION, 4));
        peer.ws.send(encodeAgentMessage({ inventory: inventory({ poolFreeBytes: 3 }) }, PROTOCOL_VERSION, 5));
        await waitFor(() => seen.includes(3), { what: "the answer's inventory handled", timeoutMs: 10_000 });
        // The one waiting went first, with the status (as before).
        expect(seen).toEqual([1, 2, 3]);
      } finally {
        c.clock.offsetMs += 60_000;
      }
      peer.ws.close();
      await peer.closed;
    });
  });
});
