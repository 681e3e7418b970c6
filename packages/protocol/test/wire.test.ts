import { errorCodes, GildError } from "@gild/core";
import {
  type AgentMessage,
  COMMAND_KINDS,
  type ControllerMessage,
  checkProtocolVersion,
  commandKindOf,
  decodeAgentMessage,
  decodeControllerMessage,
  decodeManifest,
  decodePeerTicket,
  decodeTransferHeader,
  emptyDeployResult,
  encodeAgentMessage,
  encodeControllerMessage,
  encodeManifest,
  encodePeerTicket,
  encodeTransferHeader,
  MAX_FRAME_BYTES,
  MIN_PROTOCOL_VERSION,
  modelFromJson,
  modelToJson,
  PEER_TICKET_CONTEXT,
  PROTOCOL_VERSION,
  peekHello,
  peerTicketSignedBytes,
} from "@gild/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const VERSIONS = [1, 2] as const;

const health = {
  kind: "http" as const,
  target: "http://127.0.0.1:8080/healthz",
  command: [],
  intervalMs: 1000,
  timeoutMs: 500,
  initialDelayMs: 0,
  minHealthyMs: 2000,
};
const spec = {
  name: "blog",
  imageLine: "php",
  command: ["/usr/local/bin/serve", "8080"],
  env: { A: "1" },
  dataMount: "/srv/app",
  health,
  stopTimeoutMs: 10_000,
  port: 8080,
  codeLine: "",
  codeMount: "",
};

/** One of each message an agent sends, every field set (a round trip must give it back whole). */
const fromAgents: AgentMessage[] = [
  {
    hello: {
      protocolVersion: PROTOCOL_VERSION,
      hostId: "h_0123456789abcdef",
      hostName: "web-1",
      agentVersion: "0.1.0",
      kernelVersion: "6.18.0",
      btrfsProgsVersion: "6.2",
      labels: { role: "web", zone: "a" },
      facts: { arch: "x86_64" },
      maxStreamVersion: 2,
    },
  },
  { heartbeat: { sentAtMs: 2 ** 52 } },
  {
    inventory: {
      images: [{ line: "php", version: 3, uuid: "u3", receivedUuid: "r3" }],
      poolFreeBytes: 2 ** 45,
      poolTotalBytes: 2 ** 46,
      apps: [
        {
          name: "blog",
          generation: 7,
          imageLine: "php",
          imageVersion: 3,
          state: "rollback-failed",
          health: "unhealthy",
          healthDetail: "404",
          healthSinceMs: 1_790_000_000_000,
          healthyForMs: 0,
          previousGeneration: 6,
          previousImageVersion: 2,
          generations: [6, 7],
          specHash: "abc",
          codeLine: "blog-code",
          codeVersion: 12,
          previousCodeVersion: 11,
        },
      ],
      reportedAtMs: 1_790_000_000_000,
      facts: { updates: "12", rebootRequired: "yes" },
    },
  },
  {
    commandStatus: {
      commandId: "c-1",
      state: "failed",
      progress: null,
      error: { code: "GILD_ROLLBACK_UNHEALTHY", message: "probe failed", hint: "see logs" },
      replayed: true,
      deploy: {
        ...emptyDeployResult("blog"),
        generation: 8,
        rolledBack: true,
        reason: "exit 3",
        rollbackUnhealthy: true,
        rollbackReason: "404",
        codeVersion: 12,
      },
    },
  },
  {
    commandStatus: {
      commandId: "c-2",
      state: "running",
      progress: { bytesDone: 5, bytesTotal: 2 ** 40, rateBytesPerSecond: 7, phase: "receive" },
      error: null,
      replayed: false,
    },
  },
  {
    commandStatus: {
      commandId: "c-3",
      state: "succeeded",
      progress: null,
      error: null,
      replayed: false,
      pull: { uuid: "u", receivedUuid: "r", bytesTransferred: 9, alreadyPresent: false, resumedFrom: 4 },
    },
  },
  {
    commandStatus: {
      commandId: "c-4",
      state: "succeeded",
      progress: null,
      error: null,
      replayed: false,
      logs: { generation: 3, data: Uint8Array.from([1, 2, 3]), nextOffset: 10, size: 12 },
    },
  },
];

const deploy = (commandId: string, over: Partial<typeof spec> | { health: unknown }, codeVersion = 0) => ({
  command: {
    commandId,
    deployApp: {
      spec: { ...spec, ...over },
      imageVersion: 3,
      codeVersion,
      healthyDeadlineMs: 60_000,
      specHash: "h",
    },
  },
});

/**
 * A message as a protocol-1 peer gets it back: protocol 1 has no app code (the controller sends an app
 * with code only to agents of protocol 2, GILD_AGENT_TOO_OLD otherwise).
 */
function asProtocol(version: number, message: object): object {
  if (version >= 2) return message;
  const m = structuredClone(message) as Record<string, Record<string, unknown>>;
  const inventory = m.inventory as { apps?: Array<Record<string, unknown>>; facts?: object } | undefined;
  if (inventory) inventory.facts = {};
  for (const app of inventory?.apps ?? [])
    Object.assign(app, { codeLine: "", codeVersion: 0, previousCodeVersion: 0 });
  const status = m.commandStatus as { deploy?: Record<string, unknown> } | undefined;
  if (status?.deploy) status.deploy.codeVersion = 0;
  const command = m.command as Record<string, Record<string, unknown>> | undefined;
  if (command?.deployApp) {
    command.deployApp.codeVersion = 0;
    Object.assign(command.deployApp.spec as object, { codeLine: "", codeMount: "" });
  }
  if (command?.rollbackApp) command.rollbackApp.onlyFromCodeVersion = 0;
  return m;
}

/** One of each message the controller sends, every command kind and probe kind among them. */
const fromController = [
  {
    welcome: {
      protocolVersion: PROTOCOL_VERSION,
      controllerVersion: "0.1.0",
      heartbeatIntervalMs: 20_000,
      serverTimeMs: 1_790_000_000_000,
    },
  },
  { refusal: { code: "GILD_PROTO_VERSION", message: "no", hint: "upgrade" } },
  {
    command: {
      commandId: "p",
      pullImage: { manifest: Uint8Array.from([1, 2]), signature: Uint8Array.from([3]) },
    },
  },
  { command: { commandId: "ri", removeImage: { line: "php", version: 2 } } },
  deploy("d-http", {}),
  deploy("d-exec", { health: { ...health, kind: "exec", target: "", command: ["true"] } }),
  deploy("d-tcp", { health: { ...health, kind: "tcp", target: "127.0.0.1:80" } }),
  deploy("d-none", { health: null }),
  deploy("d-code", { codeLine: "blog-code", codeMount: "/srv/app/code" }, 7),
  {
    command: {
      commandId: "rb",
      rollbackApp: { name: "blog", healthyDeadlineMs: 5, onlyFromImageVersion: 3, onlyFromCodeVersion: 0 },
    },
  },
  {
    command: {
      commandId: "rbc",
      rollbackApp: { name: "blog", healthyDeadlineMs: 5, onlyFromImageVersion: 0, onlyFromCodeVersion: 7 },
    },
  },
  { command: { commandId: "ra", removeApp: { name: "blog", purgeData: true } } },
  {
    command: {
      commandId: "l1",
      readLogs: { name: "blog", generation: 0, from: { tailBytes: 65_536 }, maxBytes: 1024 },
    },
  },
  {
    command: {
      commandId: "l2",
      readLogs: { name: "blog", generation: 4, from: { offset: 7 }, maxBytes: 1024 },
    },
  },
] as ControllerMessage[];

/** Host maintenance (host-update jobs): protocol 2 only. */
const hostCommands = [
  {
    command: {
      commandId: "hu:h:run",
      runHostCommand: { argv: ["/bin/sh", "-c", "apt-get -y upgrade"], timeoutMs: 1_800_000 },
    },
  },
  { command: { commandId: "hu:h:reboot", rebootHost: {} } },
] as ControllerMessage[];

const hostCommandResults = [
  {
    commandStatus: {
      commandId: "hu:h:run",
      state: "failed",
      progress: null,
      error: { code: "GILD_COMMAND_FAILED", message: "exit code 100", hint: "" },
      replayed: false,
      hostCommand: { exitCode: 100, outputTail: "E: Unable to locate package\n", rebootRequired: false },
    },
  },
  {
    commandStatus: {
      commandId: "hu:h:run2",
      state: "succeeded",
      progress: null,
      error: null,
      replayed: true,
      hostCommand: { exitCode: 0, outputTail: "", rebootRequired: true },
    },
  },
] as AgentMessage[];

const label = (m: object): string => {
  const kind = Object.keys(m)[0] as string;
  if (kind !== "command") return kind;
  const command = (m as { command: { commandId: string } }).command;
  return `command ${command.commandId}`;
};

describe.each(VERSIONS)("protocol %i", (version) => {
  it.each(fromAgents.map((m) => [label(m), m] as const))(
    "round-trips what agents send: %s",
    (_l, message) => {
      expect(decodeAgentMessage(encodeAgentMessage(message, version, 1), version)).toEqual(
        asProtocol(version, message),
      );
    },
  );

  it.each(fromController.map((m) => [label(m), m] as const))(
    "round-trips what the controller sends: %s",
    (_l, message) => {
      expect(decodeControllerMessage(encodeControllerMessage(message, version, 1), version)).toEqual(
        asProtocol(version, message),
      );
    },
  );

  it("reads any version's Hello from a session's first frame", () => {
    const hello = fromAgents[0] as { hello: object };
    expect(peekHello(encodeAgentMessage(hello as AgentMessage, version, 1))).toEqual(hello.hello);
    expect(
      decodeAgentMessage(encodeAgentMessage(hello as AgentMessage, version, 1), PROTOCOL_VERSION),
    ).toEqual(hello);
  });

  it("refuses a frame the other side never sends with a coded error", () => {
    const welcome = encodeControllerMessage(fromController[0] as ControllerMessage, version, 1);
    expect(() => decodeAgentMessage(welcome, version)).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_MALFORMED" }),
    );
  });
});

describe("protocol versions", () => {
  it("are read from the schema: this build speaks 2, and serves agents of 2 and 1", () => {
    expect(PROTOCOL_VERSION).toBe(2);
    expect(MIN_PROTOCOL_VERSION).toBe(1);
    expect(() => checkProtocolVersion(2)).not.toThrow();
    expect(() => checkProtocolVersion(1)).not.toThrow();
    expect(() => checkProtocolVersion(0)).toThrow(
      expect.objectContaining({
        code: "GILD_PROTO_VERSION",
        hint: expect.stringContaining("upgrade the agent"),
      }),
    );
    expect(() => checkProtocolVersion(3)).toThrow(
      expect.objectContaining({
        code: "GILD_PROTO_VERSION",
        hint: expect.stringContaining("upgrade the controller"),
      }),
    );
  });

  it("protocol 2 numbers every error code of core's table", () => {
    for (const code of Object.keys(errorCodes)) {
      const refusal: ControllerMessage = { refusal: { code, message: "m", hint: "" } };
      expect(decodeControllerMessage(encodeControllerMessage(refusal, 2, 1), 2)).toEqual(refusal);
    }
  });

  it("protocol 2 refuses enum values it does not know (a state a v1 agent may not send either)", () => {
    const bad = structuredClone(fromAgents[2]) as { inventory: { apps: Array<{ state: string }> } };
    (bad.inventory.apps[0] as { state: string }).state = "pwned";
    expect(() => encodeAgentMessage(bad as unknown as AgentMessage, 2, 1)).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_MALFORMED" }),
    );
    const v1 = encodeAgentMessage(bad as unknown as AgentMessage, 1, 1);
    expect(() => decodeAgentMessage(v1, 1)).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_MALFORMED" }),
    );
  });

  it("the sample commands cover every command kind", () => {
    const kinds = [...fromController, ...hostCommands].flatMap((m) =>
      "command" in m ? [commandKindOf(m.command)] : [],
    );
    expect(new Set(kinds)).toEqual(new Set(COMMAND_KINDS));
    expect(commandKindOf({})).toBeUndefined();
    expect(commandKindOf({ deployApp: {}, removeApp: {} })).toBeUndefined();
  });

  it("keeps stored commands and results as JSON, bytes included", () => {
    for (const message of [...fromController, ...fromAgents, ...hostCommands, ...hostCommandResults])
      expect(modelFromJson(modelToJson(message))).toEqual(message);
  });

  it("keeps Node Buffers as bytes too (a signed manifest is a Buffer), not as Buffer's toJSON object", () => {
    const manifest = Buffer.from([0, 1, 2, 250]);
    const stored = modelFromJson<{ pullImage: { manifest: Uint8Array; signature: Uint8Array } }>(
      modelToJson({ pullImage: { manifest, signature: Buffer.alloc(3, 7) } }),
    );
    expect(stored.pullImage.manifest).toBeInstanceOf(Uint8Array);
    expect([...stored.pullImage.manifest]).toEqual([0, 1, 2, 250]);
    expect([...stored.pullImage.signature]).toEqual([7, 7, 7]);
  });

  it("refuses frames over the limit before decoding, and never produces one", () => {
    for (const version of VERSIONS) {
      expect(() => decodeAgentMessage(new Uint8Array(MAX_FRAME_BYTES + 1), version)).toThrow(
        expect.objectContaining({ code: "GILD_PROTO_TOO_LARGE" }),
      );
      const huge: AgentMessage = {
        commandStatus: {
          commandId: "x",
          state: "succeeded",
          progress: null,
          error: null,
          replayed: false,
          logs: { generation: 1, data: new Uint8Array(MAX_FRAME_BYTES), nextOffset: 0, size: 0 },
        },
      };
      expect(() => encodeAgentMessage(huge, version, 1)).toThrow(
        expect.objectContaining({ code: "GILD_PROTO_TOO_LARGE" }),
      );
    }
  });

  it("gives coded errors for malformed and payload-less frames", () => {
    for (const version of VERSIONS) {
      expect(() => decodeAgentMessage(Uint8Array.from([0x0a, 0xff, 0xff]), version)).toThrow(
        expect.objectContaining({ code: "GILD_PROTO_MALFORMED" }),
      );
      expect(() => decodeAgentMessage(new Uint8Array(), version)).toThrow(
        expect.objectContaining({ code: "GILD_PROTO_UNKNOWN" }),
      );
      // A payload field number no version has (45) is unknown, not a crash.
      expect(() => decodeAgentMessage(Uint8Array.from([0xea, 0x02, 0x00]), version)).toThrow(
        expect.objectContaining({ code: "GILD_PROTO_UNKNOWN" }),
      );
    }
  });

  it("round-trips manifests and transfer headers byte for byte", () => {
    const manifest = {
      artifactId: "a1",
      line: "php",
      version: 3,
      parentVersion: 2,
      parentUuid: "p",
      uuid: "u",
      sizeBytes: 123_456_789_012,
      sha256: "ab".repeat(32),
      streamVersion: 2,
      createdAtMs: 1_790_000_000_000,
    };
    const bytes = encodeManifest(manifest);
    expect(decodeManifest(bytes)).toMatchObject(manifest);
    expect(encodeManifest(decodeManifest(bytes))).toEqual(bytes);
    expect(
      decodeTransferHeader(encodeTransferHeader({ artifactId: "a1", offset: 5, sizeBytes: 9 })),
    ).toMatchObject({ artifactId: "a1", offset: 5, sizeBytes: 9 });
  });
});

describe("decoders under random input", () => {
  const allowed = new Set(["GILD_PROTO_MALFORMED", "GILD_PROTO_UNKNOWN", "GILD_PROTO_TOO_LARGE"]);
  const outcomeOf = (decode: () => unknown) => {
    try {
      decode();
      return "ok";
    } catch (err) {
      if (!(err instanceof GildError)) throw err;
      return err.code;
    }
  };
  const decoders = VERSIONS.flatMap((v) => [
    (b: Uint8Array) => decodeAgentMessage(b, v),
    (b: Uint8Array) => decodeControllerMessage(b, v),
  ]);

  it("never crash or hang on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.integer({ min: 0, max: 3 }), (bytes, which) => {
        const started = performance.now();
        const outcome = outcomeOf(() => (decoders[which] as (b: Uint8Array) => unknown)(bytes));
        expect(outcome === "ok" || allowed.has(outcome)).toBe(true);
        expect(performance.now() - started).toBeLessThan(1000);
      }),
      { numRuns: 4000 },
    );
  });

  it("never crash on mutations of valid frames", () => {
    const frames = VERSIONS.flatMap((v) => [
      ...fromAgents.map((m) => ({
        bytes: encodeAgentMessage(m, v, 1),
        decode: (b: Uint8Array) => decodeAgentMessage(b, v),
      })),
      ...fromController.map((m) => ({
        bytes: encodeControllerMessage(m, v, 1),
        decode: (b: Uint8Array) => decodeControllerMessage(b, v),
      })),
    ]);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: frames.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (which, edits, cut) => {
          const { bytes, decode } = frames[which] as (typeof frames)[number];
          const frame = Uint8Array.from(bytes);
          for (const [at, value] of edits) frame[at % frame.length] = value;
          const outcome = outcomeOf(() => decode(frame.subarray(0, frame.length - (cut % 4))));
          expect(outcome === "ok" || allowed.has(outcome)).toBe(true);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("survive deeply nested groups without a stack overflow escaping as a crash", () => {
    const nested = new Uint8Array(200_000).fill(0x0b);
    for (const decode of decoders) expect(allowed.has(outcomeOf(() => decode(nested)))).toBe(true);
  });
});

describe("host maintenance commands", () => {
  it.each(hostCommands.map((m) => [label(m), m] as const))("protocol 2 round-trips %s", (_l, message) => {
    expect(decodeControllerMessage(encodeControllerMessage(message, 2, 1), 2)).toEqual(message);
  });

  it.each(hostCommandResults.map((m) => [label(m), m] as const))(
    "protocol 2 round-trips %s",
    (_l, message) => {
      expect(decodeAgentMessage(encodeAgentMessage(message, 2, 1), 2)).toEqual(message);
    },
  );

  it.each(hostCommands.map((m) => [label(m), m] as const))(
    "protocol 1 refuses %s with a coded error (no v1 agent can run it)",
    (_l, message) => {
      expect(() => encodeControllerMessage(message, 1, 1)).toThrow(
        expect.objectContaining({ code: "GILD_PROTO_VERSION" }),
      );
    },
  );
});

describe("peer fan-out on the wire", () => {
  const peerSources = [
    {
      hostId: "h2",
      address: "10.0.0.12:7744",
      ticket: Uint8Array.from(
        encodePeerTicket({
          requesterHostId: "h1",
          artifactId: "a".repeat(32),
          serverHostId: "h2",
          expiresAtMs: 1_790_000_000_000,
        }),
      ),
      ticketSignature: Uint8Array.from([9, 9]),
    },
    {
      hostId: "h3",
      address: "10.0.0.13:7744",
      ticket: Uint8Array.from([1]),
      ticketSignature: Uint8Array.from([8]),
      // Still downloading itself: the flag goes over the wire; absent above, it stays absent.
      downloading: true,
    },
  ];
  const pull: ControllerMessage = {
    command: {
      commandId: "p",
      pullImage: { manifest: Uint8Array.from([1]), signature: Uint8Array.from([2]), peerSources },
    },
  };

  it("protocol 2 carries peer sources; protocol 1 drops them (its agents fetch from the controller)", () => {
    expect(decodeControllerMessage(encodeControllerMessage(pull, 2, 1), 2)).toEqual(pull);
    const v1 = decodeControllerMessage(encodeControllerMessage(pull, 1, 1), 1);
    expect(v1).toEqual({
      command: {
        commandId: "p",
        pullImage: { manifest: Uint8Array.from([1]), signature: Uint8Array.from([2]) },
      },
    });
  });

  it("a ticket decodes to what was signed, and its signed bytes start with the context", () => {
    const ticket = peerSources[0]?.ticket as Uint8Array;
    expect(decodePeerTicket(ticket)).toEqual({
      requesterHostId: "h1",
      artifactId: "a".repeat(32),
      serverHostId: "h2",
      expiresAtMs: 1_790_000_000_000,
    });
    expect(peerTicketSignedBytes(ticket).subarray(0, PEER_TICKET_CONTEXT.length).toString("latin1")).toBe(
      PEER_TICKET_CONTEXT,
    );
    // The context can never be read as a manifest (its first byte is an invalid wire type).
    expect(() => decodeManifest(peerTicketSignedBytes(ticket))).toThrow();
  });

  it("a pull result carries bad peers in protocol 2 only", () => {
    const status: AgentMessage = {
      commandStatus: {
        commandId: "p",
        state: "succeeded",
        progress: null,
        error: null,
        replayed: false,
        pull: {
          uuid: "u",
          receivedUuid: "r",
          bytesTransferred: 10,
          alreadyPresent: false,
          resumedFrom: 0,
          badPeers: [{ hostId: "h3", reason: "chunk 4 sha256 mismatch" }],
          bytesFromPeers: 8,
        },
      },
    };
    expect(decodeAgentMessage(encodeAgentMessage(status, 2, 1), 2)).toEqual(status);
    const v1 = decodeAgentMessage(encodeAgentMessage(status, 1, 1), 1);
    expect("commandStatus" in v1 && v1.commandStatus.pull?.badPeers).toBeUndefined();
  });
});
