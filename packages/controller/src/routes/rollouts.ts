import { isCanaryWave, isTerminalRolloutState, ROLLOUT_VERB_NAMES, type RolloutEvent } from "@gild/core";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { ProgressUpdate } from "../command-service.js";
import { openEventStream } from "../event-stream.js";
import type { RolloutUpdate } from "../rollout-feed.js";
import type { RolloutRequest } from "../rollout-request.js";
import { rolloutView } from "../rollout-view.js";
import type { Services } from "../services.js";
import type { StoredRollout } from "../store/rollouts-repo.js";

// Only "an object": the fields are checked as a whole by checkRolloutRequest, which lists every
// problem (unknown fields, image, strategy, hosts, apps) with its path in one answer.
const requestSchema = { type: "object" } as const;

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

  app.get<{ Querystring: { limit?: string } }>("/v1/rollouts", async (req) => {
    const limit = Math.min(Math.max(Number(req.query.limit ?? 50) || 50, 1), 1000);
    return { rollouts: services.store.rollouts.list(limit).map(view) };
  });

  app.post<{ Body: RolloutRequest }>(
    "/v1/rollouts/plan",
    { schema: { body: requestSchema } },
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

  app.post<{ Body: RolloutRequest }>("/v1/rollouts", { schema: { body: requestSchema } }, async (req) => {
    const stored = executor.start(req.body, req.actor);
    req.auditSummary = `rollout ${stored.record.id} of ${req.body.image} started`;
    await executor.settled(stored.record.id);
    return view(executor.get(stored.record.id));
  });

  app.get<{ Params: { id: string } }>("/v1/rollouts/:id", async (req) => {
    const stored = executor.get(resolveId(req.params.id));
    return { ...view(stored), events: services.store.rollouts.events(stored.record.id).slice(-200) };
  });

  app.get<{ Params: { id: string } }>("/v1/rollouts/:id/events", async (req, reply) => {
    const stored = executor.get(resolveId(req.params.id));
    streamRollout(reply, stored, services, view);
  });

  for (const verb of ROLLOUT_VERB_NAMES) {
    app.post<{ Params: { id: string }; Body: { maxParallel?: number } }>(
      `/v1/rollouts/:id/${verb}`,
      {
        schema: {
          body: {
            type: "object",
            additionalProperties: false,
            properties: { maxParallel: { type: "integer", minimum: 1 } },
          },
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
