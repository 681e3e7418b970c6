import type { HostView } from "@gild/api-client";
import { GildError } from "@gild/core";
import { CloseCode } from "@gild/protocol";
import type { FastifyInstance } from "fastify";
import { hostByName } from "../host-selection.js";
import { hostWindowView } from "../maintenance-windows.js";
import { jsonResponses, pathParams, removedSchema } from "../route-schemas.js";
import type { Services } from "../services.js";
import type { HostRecord } from "../store/hosts-repo.js";
import type { WindowRule } from "../store/windows-repo.js";
import { hostSchema } from "../view-schemas.js";

/** A host as the API shows it: identity, liveness, versions, images, free space, maintenance window. */
export function hostView(
  host: HostRecord,
  services: Pick<Services, "hub">,
  windowRules: readonly WindowRule[] = [],
  now = Date.now(),
): HostView {
  const online = services.hub.isOnline(host.id);
  return {
    id: host.id,
    name: host.name,
    labels: host.labels,
    state: online ? "online" : host.state,
    connected: online,
    lastSeen: services.hub.lastSeen(host.id) ?? host.lastSeen,
    joinedAt: host.joinedAt,
    agentVersion: host.agentVersion,
    protocolVersion: services.hub.protocolVersion(host.id) ?? host.protocolVersion,
    kernelVersion: host.kernelVersion,
    btrfsProgsVersion: host.btrfsProgsVersion,
    // The Hello's facts, and over them those the agent reports as they change (its inventory's).
    facts: { ...host.facts, ...(host.inventory?.facts ?? {}) },
    images: (host.inventory?.images ?? []).map((i) => ({
      line: i.line,
      version: i.version,
      receivedUuid: i.receivedUuid,
    })),
    poolFreeBytes: host.inventory?.poolFreeBytes ?? null,
    poolTotalBytes: host.inventory?.poolTotalBytes ?? null,
    apps: host.inventory?.apps ?? [],
    window: hostWindowView(host, windowRules, now),
  };
}

/** What these routes use. */
export type HostRouteDeps = Pick<Services, "hub" | "store">;

/** A fastify plugin: register it with its dependencies (`app.register(hostRoutes, deps)`). */
export async function hostRoutes(app: FastifyInstance, services: HostRouteDeps): Promise<void> {
  const tags = ["hosts"];
  const params = pathParams({ name: "the host's name" });
  app.get(
    "/v1/hosts",
    {
      schema: {
        summary: "List hosts",
        tags,
        response: jsonResponses("every joined host", {
          type: "object",
          required: ["hosts"],
          properties: { hosts: { type: "array", items: hostSchema } },
        }),
      },
    },
    async () => {
      const rules = services.store.windows.list();
      const now = Date.now();
      return { hosts: services.store.hosts.list().map((h) => hostView(h, services, rules, now)) };
    },
  );

  app.get<{ Params: { name: string } }>(
    "/v1/hosts/:name",
    { schema: { summary: "Show a host", tags, params, response: jsonResponses("the host", hostSchema) } },
    async (req) =>
      hostView(hostByName(services.store.hosts, req.params.name), services, services.store.windows.list()),
  );

  app.delete<{ Params: { name: string } }>(
    "/v1/hosts/:name",
    {
      schema: {
        summary: "Remove a host",
        description: "Forgets the host and revokes its credential; a connected agent is dropped at once.",
        tags,
        params,
        response: jsonResponses("removed", removedSchema("the host's name", { id: { type: "string" } })),
      },
    },
    async (req) => {
      const host = hostByName(services.store.hosts, req.params.name);
      services.store.transaction(() => {
        services.store.commands.deleteForHost(host.id);
        services.store.hosts.delete(host.id);
      });
      // The credential is gone from the store; a live socket is dropped now, not at its next reconnect.
      services.hub.disconnect(
        host.id,
        CloseCode.revoked,
        new GildError("GILD_CREDENTIAL_INVALID", "this host was removed from the controller"),
      );
      req.auditSummary = `removed host ${host.name}`;
      return { removed: host.name, id: host.id };
    },
  );
}
