import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { joinController, requestJson, tlsOptions } from "@gild/agent";
import {
  CloseCode,
  type Command,
  type ControllerMessage,
  decodeAgentMessage,
  decodeControllerMessage,
  encodeAgentMessage,
  encodeControllerMessage,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import { waitFor } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
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
    c = await startTestController();
    await joinHost("steady");
    await joinHost("victim");
    await joinHost("fuzzer");
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
    // stays open for the next tests: the controller must keep serving it through the abuse below
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
    const credential = credentials.get("fuzzer") as string;
    // Oversized: more than 1 MiB in one frame.
    const big = open(credential);
    await hello(big, "fuzzer");
    await big.opened;
    big.ws.send(randomBytes(MAX_FRAME_BYTES + 10));
    expect((await big.closed).code).toBe(CloseCode.tooLarge);

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
      expect(
        [CloseCode.policyViolation, CloseCode.tooLarge],
        `payload ${i} (${payload.length} bytes, binary ${i % 5 !== 0}) closed with ${closed.code} ${closed.reason}`,
      ).toContain(closed.code);
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
});
