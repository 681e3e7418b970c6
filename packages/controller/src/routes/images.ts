import type { ImageSourceRequest } from "@gild/api-client";
import { assertValidLine, GildError, LINE_KINDS, type LineKind } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { selectHosts } from "../host-selection.js";
import { streamNdjson } from "../ndjson.js";
import { jsonResponses, ndjsonResponses, pathParams, removedSchema } from "../route-schemas.js";
import type { Services } from "../services.js";
import { exactObject, imageSchema, pushEventSchema, serializedErrorSchema } from "../view-schemas.js";

function versionParam(text: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(text))
    throw new GildError("GILD_IMAGE_NAME_INVALID", `"${text}" is not a version number`);
  return Number(text);
}

/** What still needs a version: an active rollout of it, or apps running it (or kept for rollback) on hosts. */
export function imageUser(
  services: Pick<Services, "store">,
  line: string,
  version: number,
): string | undefined {
  const rollout = services.store.rollouts.active(line).find((r) => r.record.version === version);
  if (rollout) return `rollout ${rollout.record.id}`;
  for (const host of services.store.hosts.list()) {
    for (const app of host.inventory?.apps ?? []) {
      if (app.imageLine === line && (app.imageVersion === version || app.previousImageVersion === version)) {
        return `app ${app.name} on ${host.name}`;
      }
      if (app.codeLine === line && (app.codeVersion === version || app.previousCodeVersion === version)) {
        return `app ${app.name}'s code on ${host.name}`;
      }
    }
  }
  return undefined;
}

const sourceSchema = {
  type: "object",
  required: ["kind"],
  additionalProperties: false,
  description:
    "a directory on the controller (kind dir, with path) or a debootstrap (kind debootstrap, with suite)",
  properties: {
    kind: { type: "string", enum: ["dir", "debootstrap"] },
    path: { type: "string", maxLength: 4096, description: "dir: the tree to copy, on the controller" },
    suite: { type: "string", maxLength: 64, description: "debootstrap: the Debian suite (bookworm)" },
    include: { type: "array", items: { type: "string", maxLength: 128 }, maxItems: 512 },
    mirror: { type: "string", maxLength: 1024 },
    cacheDir: { type: "string", maxLength: 4096 },
  },
} as const;

const tags = ["images"];
const lineParams = pathParams({ line: "the line's name" });
const versionParams = pathParams({ line: "the line's name", version: "a version number of the line" });
const hostsDoc = {
  type: "array",
  items: { type: "string" },
  description: "host names and label selectors (role=web)",
} as const;
const outputLines = { output: "a line the build printed, in `line`" };

/** What these routes use. */
export type ImageRouteDeps = Pick<Services, "images" | "store">;

/** A fastify plugin: register it with its dependencies (`app.register(imageRoutes, deps)`). */
export async function imageRoutes(app: FastifyInstance, services: ImageRouteDeps): Promise<void> {
  app.get<{ Querystring: { line?: string; hosts?: string; kind?: string } }>(
    "/v1/images",
    {
      schema: {
        summary: "List image and code versions",
        tags,
        response: jsonResponses(
          "the versions, by line and version",
          exactObject({ images: { type: "array", items: imageSchema } }),
        ),
      },
      // Read by the handler (a bad line or kind is GILD_IMAGE_NAME_INVALID or GILD_BAD_REQUEST): documented only.
      config: {
        documented: {
          querystring: {
            type: "object",
            properties: {
              line: { type: "string", description: "only this line" },
              hosts: {
                type: "string",
                enum: ["1", "true"],
                description: "also list the hosts that have each version",
              },
              kind: { type: "string", enum: [...LINE_KINDS], description: "only lines of this kind" },
            },
          },
        },
      },
    },
    async (req) => {
      const line = req.query.line === undefined ? undefined : assertValidLine(req.query.line);
      const kind = req.query.kind;
      if (kind !== undefined && !LINE_KINDS.includes(kind as LineKind))
        throw new GildError("GILD_BAD_REQUEST", `kind must be one of ${LINE_KINDS.join(", ")}`);
      return {
        images: services.images.list(
          line,
          req.query.hosts === "1" || req.query.hosts === "true",
          kind as LineKind | undefined,
        ),
      };
    },
  );

  app.post<{ Body: { line: string; source: ImageSourceRequest; kind?: LineKind } }>(
    "/v1/images",
    {
      schema: {
        summary: "Make the first version of a line",
        description:
          "Builds version 1 of a new line from a directory or a debootstrap, streaming the build's output.",
        tags,
        response: ndjsonResponses("the build's output, then the new version", outputLines, imageSchema),
        body: {
          type: "object",
          required: ["line", "source"],
          additionalProperties: false,
          properties: {
            line: { type: "string", description: "the new line's name" },
            source: sourceSchema,
            kind: {
              type: "string",
              enum: [...LINE_KINDS],
              description: "os: apps run on it; code: an app's files [os]",
            },
          },
        },
      },
    },
    async (req, reply) => {
      const line = assertValidLine(req.body.line);
      const source = req.body.source;
      if (source.kind === "dir" && !source.path)
        throw new GildError("GILD_BAD_REQUEST", "source.path is required for kind dir");
      if (source.kind === "debootstrap" && !source.suite)
        throw new GildError("GILD_BAD_REQUEST", "source.suite is required for kind debootstrap");
      return streamNdjson(
        reply,
        (emit) =>
          services.images.create(
            line,
            source,
            req.actor,
            (l) => emit({ type: "output", line: l }),
            req.body.kind ?? "os",
          ),
        ({ summary }) => {
          req.auditSummary = `create ${line}: ${summary}`;
        },
      );
    },
  );

  app.post<{
    Params: { line: string };
    Body: { command: string[]; env?: Record<string, string>; from?: number };
  }>(
    "/v1/images/:line/update",
    {
      schema: {
        summary: "Make a new version of a line by running a command in it",
        description:
          "Snapshots a version (the latest, or `from`), runs the command inside, and keeps the result as the next version.",
        tags,
        params: lineParams,
        response: ndjsonResponses("the command's output, then the new version", outputLines, imageSchema),
        body: {
          type: "object",
          required: ["command"],
          additionalProperties: false,
          properties: {
            command: {
              type: "array",
              items: { type: "string" },
              minItems: 1,
              maxItems: 1024,
              description: "argv run in the new version",
            },
            env: { type: "object", additionalProperties: { type: "string" } },
            from: { type: "integer", minimum: 1, description: "the version to start from [the latest]" },
          },
        },
      },
    },
    async (req, reply) => {
      const line = assertValidLine(req.params.line);
      const { command, env, from } = req.body;
      return streamNdjson(
        reply,
        (emit) =>
          services.images.update(
            line,
            command,
            { ...(from ? { from } : {}), ...(env ? { env } : {}) },
            req.actor,
            (l) => emit({ type: "output", line: l }),
          ),
        ({ summary }) => {
          req.auditSummary = `update ${line}: ${command.join(" ")}: ${summary}`;
        },
      );
    },
  );

  app.delete<{ Params: { line: string; version: string } }>(
    "/v1/images/:line/:version",
    {
      schema: {
        summary: "Remove a version from the controller",
        description: "Refused while a rollout or an app (or its rollback) still needs it.",
        tags,
        params: versionParams,
        response: jsonResponses("removed", removedSchema("line@version")),
      },
    },
    async (req) => {
      const line = assertValidLine(req.params.line);
      const version = versionParam(req.params.version);
      await services.images.remove(line, version, (l, v) => imageUser(services, l, v));
      req.auditSummary = `removed ${line}@${version}`;
      return { removed: `${line}@${version}` };
    },
  );

  app.post<{ Params: { line: string; version: string }; Body: { hosts: string[] } }>(
    "/v1/images/:line/:version/evict",
    {
      schema: {
        summary: "Delete a version from hosts",
        tags,
        params: versionParams,
        body: {
          type: "object",
          required: ["hosts"],
          additionalProperties: false,
          properties: { hosts: { ...hostsDoc, minItems: 1, maxItems: 100_000 } },
        },
        response: jsonResponses(
          "each host's outcome",
          exactObject({
            hosts: {
              type: "array",
              items: {
                type: "object",
                required: ["host", "state"],
                additionalProperties: false,
                properties: {
                  host: { type: "string" },
                  state: { type: "string", enum: ["removed", "failed"] },
                  error: serializedErrorSchema,
                },
              },
            },
          }),
        ),
      },
    },
    async (req) => {
      const line = assertValidLine(req.params.line);
      const version = versionParam(req.params.version);
      const hosts = selectHosts(services.store.hosts.list(), req.body.hosts);
      const results = await services.images.evict(line, version, hosts);
      req.auditSummary = `evict ${line}@${version} from ${hosts.map((h) => h.name).join(",")}`;
      return { hosts: results };
    },
  );

  app.post<{ Params: { line: string; version: string }; Body: { hosts?: string[]; all?: boolean } }>(
    "/v1/images/:line/:version/push",
    {
      schema: {
        summary: "Send a version to hosts",
        description: "Incrementally where a host has a parent version; streams each host's progress.",
        tags,
        params: versionParams,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            hosts: { ...hostsDoc, maxItems: 100_000 },
            all: { type: "boolean", description: "every joined host" },
          },
        },
        response: ndjsonResponses(
          "each host's progress, then every host's outcome",
          { host: "a host's state changed: the PushEvent's fields beside `type`" },
          exactObject({ hosts: { type: "array", items: pushEventSchema } }),
        ),
      },
    },
    async (req, reply) => {
      const line = assertValidLine(req.params.line);
      const version = versionParam(req.params.version);
      services.images.get(line, version);
      const all = services.store.hosts.list();
      const hosts = req.body.all ? all : selectHosts(all, req.body.hosts ?? []);
      if (hosts.length === 0)
        throw new GildError("GILD_BAD_REQUEST", "no hosts to push to", { hint: "pass --hosts a,b or --all" });
      return streamNdjson(
        reply,
        async (emit) => {
          const events = await services.images.push(line, version, hosts, (e) =>
            emit({ type: "host", ...e }),
          );
          return { hosts: events };
        },
        ({ summary }) => {
          req.auditSummary = `push ${line}@${version} to ${hosts.map((h) => h.name).join(",")}: ${summary}`;
        },
      );
    },
  );
}
