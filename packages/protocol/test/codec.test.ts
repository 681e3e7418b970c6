import { GildError } from "@gild/core";
import {
  checkProtocolVersion,
  decodeEnvelope,
  decodeManifest,
  decodeTransferHeader,
  type Envelope,
  encodeEnvelope,
  encodeManifest,
  encodeTransferHeader,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "@gild/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const samples: Envelope[] = [
  {
    seq: 1,
    hello: {
      protocolVersion: PROTOCOL_VERSION,
      hostId: "h-1",
      hostName: "web-1",
      agentVersion: "0.1.0",
      kernelVersion: "6.18.0",
      btrfsProgsVersion: "6.2",
      labels: { role: "web", zone: "a" },
      facts: { arch: "x86_64" },
      maxStreamVersion: 2,
    },
  },
  {
    seq: 2,
    welcome: {
      protocolVersion: 1,
      controllerVersion: "0.1.0",
      heartbeatIntervalMs: 20_000,
      serverTimeMs: 1_790_000_000_000,
    },
  },
  { seq: 3, heartbeat: { sentAtMs: 1_790_000_000_123 } },
  {
    seq: 4,
    inventory: {
      images: [
        { line: "php", version: 3, uuid: "u3", receivedUuid: "r3", parentUuid: "u2", sizeBytes: 5 * 2 ** 40 },
      ],
      poolFreeBytes: 2 ** 45,
      poolTotalBytes: 2 ** 46,
      apps: [
        {
          name: "blog",
          generation: 7,
          imageLine: "php",
          imageVersion: 3,
          state: "running",
          health: "healthy",
          healthSinceMs: 1_790_000_000_000,
          previousGeneration: 6,
          generations: [6, 7],
        },
      ],
      reportedAtMs: 1_790_000_000_000,
    },
  },
  {
    seq: 5,
    command: {
      commandId: "c-1",
      deadlineMs: 1_790_000_100_000,
      deployApp: {
        spec: {
          name: "blog",
          imageLine: "php",
          command: ["/usr/local/bin/serve", "8080"],
          env: { A: "1" },
          dataMount: "/srv/app",
          health: {
            kind: "http",
            target: "http://127.0.0.1:8080/healthz",
            intervalMs: 1000,
            timeoutMs: 500,
            minHealthyMs: 2000,
          },
          stopTimeoutMs: 10_000,
          port: 8080,
        },
        imageVersion: 3,
        healthyDeadlineMs: 60_000,
      },
    },
  },
  {
    seq: 6,
    commandStatus: {
      commandId: "c-1",
      state: 3,
      error: { code: "GILD_HEALTH_FAILED", message: "probe failed", hint: "see logs" },
      deploy: { name: "blog", generation: 8, rolledBack: true, reason: "exit 3" },
    },
  },
  { seq: 7, refusal: { error: { code: "GILD_PROTO_VERSION", message: "no" } } },
];

describe("envelope codec", () => {
  it.each(samples.map((s) => [Object.keys(s).find((k) => k !== "seq"), s] as const))(
    "round-trips %s",
    (_kind, sample) => {
      const decoded = decodeEnvelope(encodeEnvelope(sample));
      expect(decoded).toMatchObject(sample as Record<string, unknown>);
    },
  );

  it("decodes 64-bit fields as plain numbers", () => {
    const decoded = decodeEnvelope(encodeEnvelope({ seq: 2 ** 50, heartbeat: { sentAtMs: 2 ** 52 } }));
    expect(decoded.seq).toBe(2 ** 50);
    expect(decoded.heartbeat?.sentAtMs).toBe(2 ** 52);
    expect(typeof decodeEnvelope(encodeEnvelope({ heartbeat: {} })).seq).toBe("number");
  });

  it("refuses frames over the limit before decoding", () => {
    expect(() => decodeEnvelope(new Uint8Array(MAX_FRAME_BYTES + 1))).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_TOO_LARGE" }),
    );
    const huge: Envelope = {
      commandStatus: { commandId: "x", logs: { data: new Uint8Array(MAX_FRAME_BYTES) } },
    };
    expect(() => encodeEnvelope(huge)).toThrow(expect.objectContaining({ code: "GILD_PROTO_TOO_LARGE" }));
  });

  it("gives coded errors for malformed and payload-less frames", () => {
    expect(() => decodeEnvelope(Uint8Array.from([0x0a, 0xff, 0xff]))).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_MALFORMED" }),
    );
    expect(() => decodeEnvelope(new Uint8Array())).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_UNKNOWN" }),
    );
    // A payload field number from a newer protocol (45, reserved here) is unknown, not a crash.
    expect(() => decodeEnvelope(Uint8Array.from([0xea, 0x02, 0x00]))).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_UNKNOWN" }),
    );
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
    ).toMatchObject({
      artifactId: "a1",
      offset: 5,
      sizeBytes: 9,
    });
  });

  it("checks protocol versions", () => {
    expect(() => checkProtocolVersion(PROTOCOL_VERSION)).not.toThrow();
    expect(() => checkProtocolVersion(0)).toThrow(expect.objectContaining({ code: "GILD_PROTO_VERSION" }));
    expect(() => checkProtocolVersion(PROTOCOL_VERSION + 1)).toThrow(
      expect.objectContaining({ code: "GILD_PROTO_VERSION" }),
    );
  });
});

describe("decoder under random input", () => {
  const allowed = new Set(["GILD_PROTO_MALFORMED", "GILD_PROTO_UNKNOWN", "GILD_PROTO_TOO_LARGE"]);
  const decodeOrCode = (bytes: Uint8Array) => {
    try {
      decodeEnvelope(bytes);
      return "ok";
    } catch (err) {
      if (!(err instanceof GildError)) throw err;
      return err.code;
    }
  };

  it("never crashes or hangs on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        const started = performance.now();
        const outcome = decodeOrCode(bytes);
        expect(outcome === "ok" || allowed.has(outcome)).toBe(true);
        expect(performance.now() - started).toBeLessThan(1000);
      }),
      { numRuns: 5000 },
    );
  });

  it("never crashes on mutations of valid frames", () => {
    const frames = samples.map((s) => encodeEnvelope(s));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: frames.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (which, edits, cut) => {
          const frame = Uint8Array.from(frames[which] as Uint8Array);
          for (const [at, value] of edits) frame[at % frame.length] = value;
          const outcome = decodeOrCode(frame.subarray(0, frame.length - (cut % 4)));
          expect(outcome === "ok" || allowed.has(outcome)).toBe(true);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("survives deeply nested groups without a stack overflow escaping as a crash", () => {
    // Wire type 3 (start group) nested 200k deep: protobufjs recurses when skipping it.
    const nested = new Uint8Array(200_000).fill(0x0b);
    expect(allowed.has(decodeOrCode(nested))).toBe(true);
  });
});
