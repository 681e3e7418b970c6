import {
  isCanaryWave,
  isTerminalRolloutState,
  ROLLOUT_VERB_NAMES,
  ROLLOUT_VERBS,
  type RolloutEvent,
} from "@gild/core";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { ProgressUpdate } from "../command-service.js";
import { openEventStream } from "../event-stream.js";
import type { RolloutUpdate } from "../rollout-feed.js";
import type { RolloutRequest } from "../rollout-request.js";
import { rolloutView } from "../rollout-view.js";
import { eventStreamResponses, jsonResponses, pathParams } from "../route-schemas.js";
import type { Services } from "../services.js";
import type { StoredRollout } from "../store/rollouts-repo.js";
import { exactObject, rolloutPlanSchema, rolloutSchema, withEvents } from "../view-schemas.js";

// Only "an object": the fields are checked as a whole by checkRolloutRequest, which lists every
// problem (unknown fields, image, strategy, hosts, apps) with its path in one answer. The document
// shows what it takes (requestDoc).
const requestSchema = { type: "object" } as const;

const count = {
  oneOf: [{ type: "integer" }, { type: "string" }],
  description: 'a count, or a percent ("10%")',
};
const duration = {
  oneOf: [{ type: "string" }, { type: "integer" }],
  description: "a duration (5m, 90s) or ms",
};

/** What POST /v1/rollouts (and /plan) take (RolloutRequestBody in @gild/api-client). */
const requestDoc = {
  type: "object",
  required: ["image"],
  additionalProperties: false,
  properties: {
    image: { type: "string", description: "an image version, line@version (php@3)" },
    strategy: {
      type: "object",
      additionalProperties: false,
      description: "every field optional, the defaults apply (README.md, Rollouts)",
      properties: {
        canary: {
          oneOf: [{ type: "integer" }, { type: "string" }, { type: "array", items: { type: "string" } }],
          description: "canary host count, or the canary hosts (a list, or comma-separated)",
        },
        waves: { type: "array", items: count, description: "batch sizes after the canary; the last repeats" },
        maxParallel: { oneOf: [{ type: "integer" }, { type: "string" }, { type: "null" }] },
        prefetch: { type: "boolean" },
        minHealthy: duration,
        healthyDeadline: duration,
        progressDeadline: duration,
        bake: duration,
        canaryBake: duration,
        maxFailures: count,
        promote: { type: "string", enum: ["manual", "auto"] },
        onFailure: { type: "string", enum: ["rollback", "pause"] },
        rollbackMaxParallel: { oneOf: [{ type: "integer" }, { type: "string" }, { type: "null" }] },
      },
    },
    hosts: {
      type: "array",
      items: { type: "string" },
      description: "only these hosts (names or label selectors)",
    },
    apps: { type: "array", items: { type: "string" }, description: "only the hosts of these apps" },
  },
};
const tags = ["rollouts"];
const params = pathParams({ id: "the rollout's id, or current" });
const verbSummaries: Record<(typeof ROLLOUT_VERB_NAMES)[number], string> = {
  pause: "Pause a rollout",
  resume: "Resume a rollout",
  promote: "Promote a rollout",
  abort: "Abort a rollout",
  rollback: "Roll a rollout back",
};

/** What these routes use. */
export type RolloutRouteDeps = Pick<Services, "hub" | "rollouts" | "store">;

/** A fastify plugin: register it with its dependencies (`app.register(rolloutRoutes, deps)`). */
export async function rolloutRoutes(app: FastifyInstance, services: RolloutRouteDeps): Promise<void> {
  const executor = services.rollouts;
  const view = (stored: StoredRollout) =>
    rolloutView(stored, {
      store: services.store,
      isOnline: (id) => services.hub.isOnline(id),
      progress: executor.feed.progress.get(stored.record.id),
    });
  const resolveId = (id: string) => (id === "current" ? executor.defaultId() : id);

  app.get<{ Querystring: { limit?: string } }>(
    "/v1/rollouts",
    {
      schema: {
        summary: "List rollouts",
        tags,
        response: jsonResponses(
          "the latest rollouts, newest first",
          exactObject({ rollouts: { type: "array", items: rolloutSchema } }),
        ),
      },
      // Read leniently by the handler (a bad number means the default): documented only.
      config: {
        documented: {
          querystring: {
            type: "object",
            properties: {
              limit: { type: "integer", minimum: 1, maximum: 1000, description: "at most this many [50]" },
            },
          },
        },
      },
    },
    async (req) => {
      const limit = Math.min(Math.max(Number(req.query.limit ?? 50) || 50, 1), 1000);
      return { rollouts: services.store.rollouts.list(limit).map(view) };
    },
  );

  app.post<{ Body: RolloutRequest }>(
    "/v1/rollouts/plan",
    {
      schema: {
        summary: "Plan a rollout without starting it",
        description: "Its waves and an estimated timeline; the request is checked as a start would check it.",
        tags,
        body: requestSchema,
        response: jsonResponses("the plan", rolloutPlanSchema),
      },
      config: { documented: { body: requestDoc } },
    },
    async (req) => {
      const { record, timeline } = executor.plan(req.body);
      const names = services.store.hosts.names();
      const name = (id: string) => names.get(id) ?? id;
      return {
        image: `${record.line}@${record.version}`,
        strategy: record.strategy,
        waves: record.waves.map((ids, index) => ({
          index,
          canary: isCanaryWave(record, index),
          hosts: ids.map(name),
        })),
        // Hosts waiting for their windows by name, as the wave table names them.
        timeline: {
          ...timeline,
          waves: timeline.waves.map((w) => ({
            ...w,
            windowOpensAt: Object.fromEntries(
              Object.entries(w.windowOpensAt).map(([id, at]) => [name(id), at]),
            ),
          })),
        },
      };
    },
  );

  app.post<{ Body: RolloutRequest }>(
    "/v1/rollouts",
    {
      schema: {
        summary: "Start a rollout",
        description:
          "Answers once the rollout has taken its first steps; follow it with GET /v1/rollouts/{id}/events.",
        tags,
        body: requestSchema,
        response: jsonResponses("the rollout", rolloutSchema),
      },
      config: { documented: { body: requestDoc } },
    },
    async (req) => {
      const stored = executor.start(req.body, req.actor);
      req.auditSummary = `rollout ${stored.record.id} of ${req.body.image} started`;
      await executor.settled(stored.record.id);
      return view(executor.get(stored.record.id));
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/rollouts/:id",
    {
      schema: {
        summary: "Show a rollout",
        tags,
        params,
        response: jsonResponses("the rollout and its last events", withEvents(rolloutSchema)),
      },
    },
    async (req) => {
      const stored = executor.get(resolveId(req.params.id));
      return { ...view(stored), events: services.store.rollouts.events(stored.record.id).slice(-200) };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/rollouts/:id/events",
    {
      schema: {
        summary: "Follow a rollout live",
        tags,
        params,
        response: eventStreamResponses(
          "a snapshot (the rollout and its last 50 events), then the rollout, its events and transfer progress as they change, until it is over",
          ["snapshot", "rollout", "event", "progress"],
        ),
      },
    },
    async (req, reply) => {
      const stored = executor.get(resolveId(req.params.id));
      streamRollout(reply, stored, services, view);
    },
  );

  for (const verb of ROLLOUT_VERB_NAMES) {
    app.post<{ Params: { id: string }; Body: { maxParallel?: number } }>(
      `/v1/rollouts/:id/${verb}`,
      {
        schema: {
          summary: verbSummaries[verb],
          description: `${ROLLOUT_VERBS[verb].description}.`,
          tags,
          params,
          body: {
            type: "object",
            additionalProperties: false,
            properties: {
              maxParallel: {
                type: "integer",
                minimum: 1,
                description: "rollback: hosts rolled back at once",
              },
            },
          },
          response: jsonResponses("the rollout, once the verb took effect", rolloutSchema),
        },
      },
      async (req) => {
        const id = resolveId(req.params.id);
        const stored = executor.verb(
          id,
          verb,
          req.actor,
          req.body?.maxParallel ? { maxParallel: req.body.maxParallel } : {},
        );
        req.auditSummary = `${verb} rollout ${id}: now ${stored.record.state}`;
        await executor.settled(id);
        return view(executor.get(id));
      },
    );
  }
}

/**
 * The live view's feed (Server-Sent Events): a snapshot, then rollout changes, events and transfer
 * progress as they happen, until the rollout reaches a terminal state.
 */
function streamRollout(
  reply: FastifyReply,
  stored: StoredRollout,
  services: RolloutRouteDeps,
  view: (s: StoredRollout) => unknown,
): void {
  const id = stored.record.id;
  const lastProgress = new Map<string, number>();
  const stream = openEventStream(reply, () => unsubscribe());
  stream.send({
    type: "snapshot",
    rollout: view(stored),
    events: services.store.rollouts.events(id).slice(-50),
  });
  const unsubscribe = services.rollouts.feed.subscribe(id, (update: RolloutUpdate) => {
    if (update.type === "record") {
      stream.send({ type: "rollout", rollout: view(update.rollout) });
      if (isTerminalRolloutState(update.rollout.record.state)) stream.finish();
    } else if (update.type === "event") {
      stream.send({ type: "event", event: update.event satisfies RolloutEvent });
    } else {
      const now = Date.now();
      if (
        now - (lastProgress.get(update.hostId) ?? 0) < 250 &&
        update.progress.bytesDone < update.progress.bytesTotal
      )
        return;
      lastProgress.set(update.hostId, now);
      stream.send({
        type: "progress",
        hostId: update.hostId,
        progress: update.progress satisfies ProgressUpdate,
      });
    }
  });
  if (isTerminalRolloutState(stored.record.state)) stream.finish();
}
