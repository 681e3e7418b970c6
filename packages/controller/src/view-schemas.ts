// JSON Schemas of what the API answers, for the OpenAPI document (openapi.ts): they follow
// @gild/api-client's views.ts field by field. They describe, they do not serialize: answers are
// written with JSON.stringify (openapi.ts says why), so a field missing here is never dropped on the
// wire, and objects whose fields live in @gild/core or @gild/protocol are described as open objects.

/** A JSON Schema object, as route schemas and the document take it. */
export type JsonSchema = Record<string, unknown>;

/** A string, number, ... or null. */
export function orNull(type: string, description?: string): JsonSchema {
  return { type: [type, "null"], ...(description ? { description } : {}) };
}

/** An object whose fields are documented where its type lives (named in the description). */
export function openObject(description: string, properties: Record<string, JsonSchema> = {}): JsonSchema {
  return { type: "object", description, properties, additionalProperties: true };
}

/** An object with exactly these fields, all present. */
export function exactObject(properties: Record<string, JsonSchema>, description?: string): JsonSchema {
  return {
    type: "object",
    ...(description ? { description } : {}),
    required: Object.keys(properties),
    properties,
    additionalProperties: false,
  };
}

const str: JsonSchema = { type: "string" };
const int: JsonSchema = { type: "integer" };
const num: JsonSchema = { type: "number" };
const bool: JsonSchema = { type: "boolean" };
const strings: JsonSchema = { type: "array", items: str };
const stringMap: JsonSchema = { type: "object", additionalProperties: str };
const epochMs = (description = "ms since the epoch"): JsonSchema => ({ type: "integer", description });
const epochMsOrNull = (description = "ms since the epoch, or null"): JsonSchema =>
  orNull("integer", description);

/** An error as every failed answer carries it (GildError.toJSON); codes are listed in docs/errors.md. */
export const serializedErrorSchema: JsonSchema = {
  type: "object",
  required: ["code", "message"],
  additionalProperties: false,
  properties: {
    code: { type: "string", description: "a stable code, GILD_... (docs/errors.md)" },
    message: str,
    hint: { type: "string", description: "what to do about it" },
    details: {
      type: "object",
      additionalProperties: true,
      description: "more, by code: `problems` ([{path, message}]) for a refused request",
    },
  },
};

export const progressSchema: JsonSchema = exactObject(
  {
    bytesDone: int,
    bytesTotal: int,
    rateBytesPerSecond: num,
    phase: { type: "string", enum: ["download", "receive"] },
  },
  "a transfer's progress on one host",
);

const failureClustersSchema: JsonSchema = {
  type: "array",
  description: "what two or more failed hosts share that the healthy ones do not",
  items: exactObject({
    attribute: str,
    value: str,
    failedWith: int,
    failed: int,
    healthyWith: int,
    healthy: int,
    hostIds: strings,
    summary: str,
  }),
};

export const hostWindowSchema: JsonSchema = exactObject(
  {
    spec: orNull("string", "the windows in force, comma-separated; null: no rule, always open"),
    rules: strings,
    open: bool,
    nextOpenAt: epochMsOrNull("when it next opens (now when open)"),
    openUntil: epochMsOrNull("when the open stretch ends; null when closed or always open"),
  },
  "the host's effective maintenance window",
);

export const hostSchema: JsonSchema = exactObject({
  id: str,
  name: str,
  labels: stringMap,
  state: { type: "string", description: "online, offline or joined (never connected yet)" },
  connected: bool,
  lastSeen: epochMsOrNull(),
  joinedAt: epochMs(),
  agentVersion: orNull("string"),
  protocolVersion: orNull("integer"),
  kernelVersion: orNull("string"),
  btrfsProgsVersion: orNull("string"),
  facts: stringMap,
  images: { type: "array", items: exactObject({ line: str, version: int, receivedUuid: str }) },
  poolFreeBytes: orNull("integer"),
  poolTotalBytes: orNull("integer"),
  apps: {
    type: "array",
    items: openObject("an app as the host's inventory reports it (AppInstance in @gild/protocol)", {
      name: str,
      generation: int,
      imageLine: str,
      imageVersion: int,
      state: str,
      health: str,
    }),
  },
  window: hostWindowSchema,
});

export const windowRuleSchema: JsonSchema = exactObject({
  target: { type: "string", description: "a host name, or a label selector key=value" },
  kind: { type: "string", enum: ["host", "label"] },
  spec: str,
  hosts: { type: "array", items: str, description: "the hosts it applies to now" },
  setBy: orNull("string"),
  setAt: epochMs(),
});

const imageOriginSchema: JsonSchema = {
  ...openObject("how the version was made: dir, debootstrap, update or received", {
    kind: { type: "string", enum: ["dir", "debootstrap", "update", "received"] },
  }),
  type: ["object", "null"],
};

export const imageSchema: JsonSchema = {
  type: "object",
  required: [
    "line",
    "version",
    "kind",
    "uuid",
    "status",
    "parent",
    "sizeBytes",
    "origin",
    "createdBy",
    "createdAt",
  ],
  additionalProperties: false,
  properties: {
    line: str,
    version: int,
    kind: { type: "string", enum: ["os", "code"] },
    uuid: str,
    status: { type: "string", enum: ["candidate", "stable", "bad"] },
    parent: orNull("integer"),
    sizeBytes: orNull("integer"),
    origin: imageOriginSchema,
    createdBy: orNull("string"),
    createdAt: epochMs(),
    hosts: { type: "array", items: str, description: "hosts that have it (asked for with hosts=1)" },
  },
};

const appSpecSchema: JsonSchema = openObject(
  "the app's definition with every default applied (AppSpec in @gild/core)",
  {
    name: str,
    image: str,
    code: orNull("string"),
    codeMount: orNull("string"),
    hosts: strings,
    command: strings,
    env: stringMap,
    data: orNull("string"),
    port: orNull("integer"),
    health: { type: ["object", "null"], additionalProperties: true },
    stopTimeoutMs: int,
    healthyDeadlineMs: int,
  },
);

export const appSchema: JsonSchema = exactObject({
  spec: appSpecSchema,
  specHash: str,
  createdBy: orNull("string"),
  createdAt: epochMs(),
  targets: { type: "array", items: str, description: "hosts the app's selectors match now" },
  instances: {
    type: "array",
    items: exactObject({
      host: str,
      hostState: str,
      generation: int,
      imageVersion: int,
      state: str,
      health: str,
      healthDetail: str,
      healthSince: epochMsOrNull(),
      previousGeneration: int,
      previousImageVersion: int,
      codeVersion: int,
      previousCodeVersion: int,
      specCurrent: bool,
    }),
  },
  versions: exactObject({ image: orNull("integer"), code: orNull("integer") }),
});

/** A host's progress through a deploy, rollback or host change. */
export const deployEventSchema: JsonSchema = {
  type: "object",
  required: ["host", "state"],
  additionalProperties: false,
  properties: {
    host: str,
    state: {
      type: "string",
      enum: ["pulling", "switching", "done", "rolled-back", "rollback-failed", "failed", "removed"],
    },
    generation: int,
    previousGeneration: int,
    progress: progressSchema,
    reason: str,
    error: serializedErrorSchema,
  },
};

/** One host's view of a push. */
export const pushEventSchema: JsonSchema = {
  type: "object",
  required: ["host", "state"],
  additionalProperties: false,
  properties: {
    host: str,
    state: { type: "string", enum: ["queued", "preparing", "transferring", "present", "done", "failed"] },
    progress: progressSchema,
    artifact: exactObject({ id: str, sizeBytes: int, parentVersion: int, streamVersion: int }),
    error: serializedErrorSchema,
    resumedFrom: int,
    bytesTransferred: int,
  },
};

const rolloutStrategySchema: JsonSchema = openObject(
  "the resolved strategy (RolloutStrategy in @gild/core): canary, waves, maxParallel, bakes, deadlines, promote, onFailure",
);
const hostUpdateStrategySchema: JsonSchema = openObject(
  "the resolved strategy (HostUpdateStrategy in @gild/core): canary, waves, maxUnavailable, reboot, deadlines, bake, onFailure",
);

export const rolloutSchema: JsonSchema = exactObject({
  id: str,
  line: str,
  version: int,
  image: { type: "string", description: "line@version" },
  versionStatus: { type: ["string", "null"], enum: ["candidate", "stable", "bad", null] },
  state: {
    type: "string",
    enum: [
      "running",
      "paused",
      "awaiting-promotion",
      "succeeded",
      "failed",
      "aborted",
      "rolling-back",
      "rolled-back",
    ],
  },
  phase: { type: "string", enum: ["deploying", "baking"] },
  currentWave: int,
  reason: orNull("string"),
  reasonCode: orNull("string", "the error code that goes with the state and reason"),
  pauseCause: orNull("string", "operator, wave-failed or rollback-not-ready"),
  createdBy: orNull("string"),
  apps: { type: ["array", "null"], items: str },
  createdAt: epochMs(),
  updatedAt: epochMs(),
  finishedAt: epochMsOrNull(),
  clocks: exactObject({
    progressDeadlineAt: epochMsOrNull(),
    bakeUntil: epochMsOrNull(),
    pausedAt: epochMsOrNull(),
  }),
  strategy: rolloutStrategySchema,
  waves: {
    type: "array",
    items: exactObject({
      index: int,
      canary: bool,
      hosts: {
        type: "array",
        items: openObject("a host's step (HostStep in @gild/core), its name, liveness and transfer", {
          hostId: str,
          name: str,
          state: str,
          online: bool,
          progress: { ...progressSchema, type: ["object", "null"] },
          badPeers: {
            type: "array",
            description:
              "peers that served this host a chunk not matching the signed manifest in its fetch (absent: none)",
            items: exactObject({ hostId: str, host: str, reason: str }),
          },
        }),
      },
    }),
  },
  failureClusters: failureClustersSchema,
});

/** A rollout or host update with its last events (GET .../:id). */
export function withEvents(view: JsonSchema): JsonSchema {
  const properties = view.properties as Record<string, JsonSchema>;
  return {
    ...view,
    required: [...(view.required as string[]), "events"],
    properties: {
      ...properties,
      events: {
        type: "array",
        description: "the last 200 events, oldest first",
        items: openObject("an event of the job: when, which host, what happened"),
      },
    },
  };
}

export const rolloutPlanSchema: JsonSchema = exactObject({
  image: str,
  strategy: rolloutStrategySchema,
  waves: { type: "array", items: exactObject({ index: int, canary: bool, hosts: strings }) },
  timeline: openObject(
    "the estimated timeline (Timeline in @gild/core): per wave its transfer, window wait, verify and bake seconds",
    { waves: { type: "array", items: { type: "object", additionalProperties: true } }, totalSeconds: num },
  ),
});

export const hostUpdateSchema: JsonSchema = exactObject({
  id: str,
  argv: strings,
  state: { type: "string", enum: ["running", "paused", "succeeded", "failed", "aborted"] },
  phase: { type: "string", enum: ["updating", "baking"] },
  currentWave: int,
  reason: orNull("string"),
  reasonCode: orNull("string", "GILD_HOST_UPDATE_FAILED for a failed job"),
  pauseCause: orNull("string", "operator or host-failed"),
  settled: { type: "boolean", description: "no host starts again and none is in flight" },
  createdBy: orNull("string"),
  createdAt: epochMs(),
  updatedAt: epochMs(),
  finishedAt: epochMsOrNull(),
  clocks: exactObject({ bakeUntil: epochMsOrNull(), pausedAt: epochMsOrNull() }),
  strategy: hostUpdateStrategySchema,
  waves: {
    type: "array",
    items: exactObject({
      index: int,
      canary: bool,
      hosts: {
        type: "array",
        items: openObject("a host's step (HostUpdateStep in @gild/core), its name, liveness and output", {
          hostId: str,
          name: str,
          state: str,
          online: bool,
          exitCode: orNull("integer"),
          outputTail: str,
        }),
      },
    }),
  },
  failureClusters: failureClustersSchema,
});

export const hostUpdatePlanSchema: JsonSchema = exactObject({
  argv: strings,
  strategy: hostUpdateStrategySchema,
  waves: {
    type: "array",
    items: exactObject({
      index: int,
      canary: bool,
      hosts: strings,
      windowOpensAt: {
        type: "object",
        additionalProperties: int,
        description: "hosts outside their maintenance window now, and when it opens",
      },
    }),
  },
  notes: strings,
});

export const tokenSchema: JsonSchema = exactObject({
  id: str,
  createdAt: epochMs(),
  expiresAt: epochMs(),
  createdBy: orNull("string"),
  usedAt: epochMsOrNull(),
  usedBy: orNull("string", "the host that joined with it"),
});

export const userSchema: JsonSchema = exactObject({
  name: str,
  role: { type: "string", enum: ["viewer", "operator", "admin"] },
  createdAt: epochMs(),
  createdBy: orNull("string"),
  tokenCreatedAt: epochMs(),
  expiresAt: epochMsOrNull("when the token stops working; null for never"),
});

export const auditEntrySchema: JsonSchema = exactObject({
  id: int,
  at: epochMs(),
  actor: str,
  method: str,
  path: str,
  status: int,
  summary: orNull("string"),
});
