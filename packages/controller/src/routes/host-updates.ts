import type { HostUpdatePlanView } from "@gild/api-client";
import { HOST_UPDATE_VERB_NAMES, HOST_UPDATE_VERBS, isCanaryWave, isSettledHostUpdate } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { openEventStream } from "../event-stream.js";
import { NO_UNDO_NOTE } from "../host-update-operations.js";
import { hostUpdateView } from "../host-update-view.js";
import { windowOpenings, windowsByHost } from "../maintenance-windows.js";
import { eventStreamResponses, jsonResponses, pathParams } from "../route-schemas.js";
import type { Services } from "../services.js";
import type { StoredHostUpdate } from "../store/host-updates-repo.js";
import { exactObject, hostUpdatePlanSchema, hostUpdateSchema, withEvents } from "../view-schemas.js";

// Only "an object": the fields are checked as a whole by checkHostUpdateRequest, which lists every
// problem (unknown fields, command, strategy, hosts) with its path in one answer. The document shows
// what it takes (requestDoc).
const requestSchema = { type: "object" } as const;

const count = {
  oneOf: [{ type: "integer" }, { type: "string" }],
  description: 'a count, or a percent ("10%")',
};
const duration = {
  oneOf: [{ type: "string" }, { type: "integer" }],
  description: "a duration (10m, 90s) or ms",
};

/** What POST /v1/host-updates (and /plan) take (HostUpdateRequestBody in @gild/api-client). */
const requestDoc = {
  type: "object",
  required: ["hosts"],
  additionalProperties: false,
  description: "command or argv, not both",
  properties: {
    command: { type: "string", description: "one shell text, run by /bin/sh -c" },
    argv: { type: "array", items: { type: "string" }, description: "a program and its arguments" },
    hosts: {
      type: "array",
      items: { type: "string" },
      description: "host names and label selectors: required, a host update never means every host",
    },
    strategy: {
      type: "object",
      additionalProperties: false,
      description: "every field optional, the defaults apply (docs/architecture.md, Host updates)",
      properties: {
        canary: {
          oneOf: [{ type: "integer" }, { type: "string" }, { type: "array", items: { type: "string" } }],
          description: "canary host count, or the canary hosts (a list, or comma-separated)",
        },
        waves: { type: "array", items: count, description: "batch sizes after the canary; the last repeats" },
        maxUnavailable: count,
        reboot: { type: "string", enum: ["never", "if-required", "always"] },
        commandTimeout: duration,
        deadline: duration,
        minHealthy: duration,
        bake: duration,
        onFailure: { type: "string", enum: ["pause", "fail"] },
      },
    },
  },
};
const tags = ["host-updates"];
const params = pathParams({ id: "the host update's id, or current" });
const verbSummaries: Record<(typeof HOST_UPDATE_VERB_NAMES)[number], string> = {
  pause: "Pause a host update",
  resume: "Resume a host update",
  abort: "Abort a host update",
};

/** What these routes use. */
export type HostUpdateRouteDeps = Pick<Services, "hub" | "hostUpdates" | "hostUpdateExecutor" | "store">;

/** A fastify plugin: /v1/host-updates (docs/architecture.md, Host updates). */
export async function hostUpdateRoutes(app: FastifyInstance, services: HostUpdateRouteDeps): Promise<void> {
  const ops = services.hostUpdates;
  const view = (stored: StoredHostUpdate) =>
    hostUpdateView(stored, { store: services.store, isOnline: (id) => services.hub.isOnline(id) });
  const resolveId = (id: string) => (id === "current" ? ops.defaultId() : id);

  app.get<{ Querystring: { limit?: string } }>(
    "/v1/host-updates",
    {
      schema: {
        summary: "List host updates",
        tags,
        response: jsonResponses(
          "the latest host updates, newest first",
          exactObject({ hostUpdates: { type: "array", items: hostUpdateSchema } }),
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
      return { hostUpdates: services.store.hostUpdates.list(limit).map(view) };
    },
  );

  app.post(
    "/v1/host-updates/plan",
    {
      schema: {
        summary: "Plan a host update without starting it",
        description: "Its waves, when closed maintenance windows open, and what a failure means.",
        tags,
        body: requestSchema,
        response: jsonResponses("the plan", hostUpdatePlanSchema),
      },
      config: { documented: { body: requestDoc } },
    },
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

  app.post(
    "/v1/host-updates",
    {
      schema: {
        summary: "Start a host update",
        description:
          "Runs the command as root on the hosts, wave by wave, rebooting when called for; there is no automatic undo.",
        tags,
        body: requestSchema,
        response: jsonResponses("the host update", hostUpdateSchema),
      },
      config: { documented: { body: requestDoc } },
    },
    async (req) => {
      const stored = ops.start(req.body, req.actor);
      req.auditSummary = `host update ${stored.record.id} started: ${JSON.stringify(stored.record.argv)}`;
      await ops.settled(stored.record.id);
      return view(ops.get(stored.record.id));
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/host-updates/:id",
    {
      schema: {
        summary: "Show a host update",
        tags,
        params,
        response: jsonResponses("the host update and its last events", withEvents(hostUpdateSchema)),
      },
    },
    async (req) => {
      const stored = ops.get(resolveId(req.params.id));
      return { ...view(stored), events: services.store.hostUpdates.events(stored.record.id).slice(-200) };
    },
  );

  // The live view (Server-Sent Events): a snapshot, then the job and its events as they change, until
  // it is settled.
  app.get<{ Params: { id: string } }>(
    "/v1/host-updates/:id/events",
    {
      schema: {
        summary: "Follow a host update live",
        tags,
        params,
        response: eventStreamResponses(
          "a snapshot (the host update and its last 50 events), then the job and its events as they change, until it is settled",
          ["snapshot", "hostUpdate", "event"],
        ),
      },
    },
    async (req, reply) => {
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
    },
  );

  for (const verb of HOST_UPDATE_VERB_NAMES) {
    app.post<{ Params: { id: string } }>(
      `/v1/host-updates/:id/${verb}`,
      {
        schema: {
          summary: verbSummaries[verb],
          description: `${HOST_UPDATE_VERBS[verb].description}.`,
          tags,
          params,
          response: jsonResponses("the host update, once the verb took effect", hostUpdateSchema),
        },
      },
      async (req) => {
        const id = resolveId(req.params.id);
        const stored = ops.verb(id, verb, req.actor);
        req.auditSummary = `${verb} host update ${id}: now ${stored.record.state}`;
        await ops.settled(id);
        return view(ops.get(id));
      },
    );
  }
}
