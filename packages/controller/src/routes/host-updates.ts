import type { HostUpdatePlanView } from "@gild/api-client";
import { HOST_UPDATE_VERB_NAMES, isCanaryWave, isSettledHostUpdate } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { openEventStream } from "../event-stream.js";
import { NO_UNDO_NOTE } from "../host-update-operations.js";
import { hostUpdateView } from "../host-update-view.js";
import { windowOpenings, windowsByHost } from "../maintenance-windows.js";
import type { Services } from "../services.js";
import type { StoredHostUpdate } from "../store/host-updates-repo.js";

// Only "an object": the fields are checked as a whole by checkHostUpdateRequest, which lists every
// problem (unknown fields, command, strategy, hosts) with its path in one answer.
const requestSchema = { type: "object" } as const;

/** What these routes use. */
export type HostUpdateRouteDeps = Pick<Services, "hub" | "hostUpdates" | "hostUpdateExecutor" | "store">;

/** A fastify plugin: /v1/host-updates (docs/architecture.md, Host updates). */
export async function hostUpdateRoutes(app: FastifyInstance, services: HostUpdateRouteDeps): Promise<void> {
  const ops = services.hostUpdates;
  const view = (stored: StoredHostUpdate) =>
    hostUpdateView(stored, { store: services.store, isOnline: (id) => services.hub.isOnline(id) });
  const resolveId = (id: string) => (id === "current" ? ops.defaultId() : id);

  app.get<{ Querystring: { limit?: string } }>("/v1/host-updates", async (req) => {
    const limit = Math.min(Math.max(Number(req.query.limit ?? 50) || 50, 1), 1000);
    return { hostUpdates: services.store.hostUpdates.list(limit).map(view) };
  });

  app.post(
    "/v1/host-updates/plan",
    { schema: { body: requestSchema } },
    async (req): Promise<HostUpdatePlanView> => {
      const record = ops.plan(req.body);
      const names = services.store.hosts.names();
      const windows = windowsByHost(services.store.hosts.list(), services.store.windows.list());
      const now = Date.now();
      return {
        argv: record.argv,
        strategy: record.strategy,
        waves: record.waves.map((ids, index) => ({
          index,
          canary: isCanaryWave(record, index),
          hosts: ids.map((id) => names.get(id) ?? id),
          windowOpensAt: windowOpenings(ids, windows, now, (id) => names.get(id) ?? id),
        })),
        notes: [NO_UNDO_NOTE],
      };
    },
  );

  app.post("/v1/host-updates", { schema: { body: requestSchema } }, async (req) => {
    const stored = ops.start(req.body, req.actor);
    req.auditSummary = `host update ${stored.record.id} started: ${JSON.stringify(stored.record.argv)}`;
    await ops.settled(stored.record.id);
    return view(ops.get(stored.record.id));
  });

  app.get<{ Params: { id: string } }>("/v1/host-updates/:id", async (req) => {
    const stored = ops.get(resolveId(req.params.id));
    return { ...view(stored), events: services.store.hostUpdates.events(stored.record.id).slice(-200) };
  });

  // The live view (Server-Sent Events): a snapshot, then the job and its events as they change, until
  // it is settled.
  app.get<{ Params: { id: string } }>("/v1/host-updates/:id/events", async (req, reply) => {
    const stored = ops.get(resolveId(req.params.id));
    const id = stored.record.id;
    const stream = openEventStream(reply, () => unsubscribe());
    stream.send({
      type: "snapshot",
      hostUpdate: view(stored),
      events: services.store.hostUpdates.events(id).slice(-50),
    });
    const unsubscribe = services.hostUpdateExecutor.feed.subscribe(id, (update) => {
      if (update.type === "event") stream.send({ type: "event", event: update.event });
      else {
        stream.send({ type: "hostUpdate", hostUpdate: view(update.job) });
        if (isSettledHostUpdate(update.job.record)) stream.finish();
      }
    });
    if (isSettledHostUpdate(stored.record)) stream.finish();
  });

  for (const verb of HOST_UPDATE_VERB_NAMES) {
    app.post<{ Params: { id: string } }>(`/v1/host-updates/:id/${verb}`, async (req) => {
      const id = resolveId(req.params.id);
      const stored = ops.verb(id, verb, req.actor);
      req.auditSummary = `${verb} host update ${id}: now ${stored.record.state}`;
      await ops.settled(id);
      return view(ops.get(id));
    });
  }
}
