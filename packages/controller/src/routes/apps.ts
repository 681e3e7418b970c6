import { type AppSpec, GildError, isValidLine, parseImageSelector } from "@gild/core";
import type { FastifyInstance } from "fastify";
import type { DeployVersions } from "../app-service.js";
import { streamNdjson } from "../ndjson.js";
import { jsonResponses, ndjsonResponses, pathParams } from "../route-schemas.js";
import type { Services } from "../services.js";
import { appSchema, deployEventSchema, exactObject, serializedErrorSchema } from "../view-schemas.js";

const tags = ["apps"];
const params = pathParams({ name: "the app's name" });
const hostLines = { host: "a host's state changed: the DeployEvent's fields beside `type`" };
const hostsResult = exactObject({ hosts: { type: "array", items: deployEventSchema } });
const hostNames = {
  type: "array",
  items: { type: "string" },
  description: "only these of the app's hosts (names or label selectors) [all]",
} as const;

/** What `POST /v1/apps` takes, as a file (gild app create -f) gives it; parseAppSpec checks it. */
const appSpecBody = {
  type: "object",
  required: ["name", "image", "hosts"],
  additionalProperties: false,
  properties: {
    name: { type: "string", description: "lowercase letters, digits and '-', starting with a letter" },
    image: { type: "string", description: "the image line it runs on" },
    code: { type: "string", description: "a code line mounted read-only at codeMount" },
    codeMount: { type: "string" },
    hosts: {
      oneOf: [{ type: "array", items: { type: "string" } }, { type: "string" }],
      description: "host names or label selectors (role=web): a list, or one comma-separated string",
    },
    command: {
      oneOf: [{ type: "array", items: { type: "string" } }, { type: "string" }],
      description: "the container's PID 1: an argv, or a shell string (or give cmd)",
    },
    cmd: { type: "string", description: "the command as a shell string" },
    env: { type: "object", additionalProperties: { type: "string" } },
    data: { type: "string", description: "where the app's data directory is mounted in the container" },
    port: { type: "integer" },
    health: {
      type: "object",
      description:
        "one of http (a URL), tcp (host:port) or exec (a command), with interval, timeout, initialDelay, minHealthy",
      additionalProperties: true,
    },
    stopTimeout: { type: "string", description: "a duration (10s)" },
    healthyDeadline: { type: "string", description: "a duration (2m)" },
  },
} as const;

function appName(name: string): string {
  if (!isValidLine(name)) throw new GildError("GILD_APP_NOT_FOUND", `no app named ${name}`);
  return name;
}

/**
 * The versions a deploy request moves: `image` (php or php@3) and `code` (blog or blog@7), each the
 * line's latest when it names no version; with neither, the latest of the image (or `version`) and of
 * the code.
 */
function deployMoves(
  services: AppRouteDeps,
  name: string,
  spec: AppSpec,
  body: { image?: string; code?: string; version?: number },
): Partial<DeployVersions> {
  const latest = (line: string, kind: string) => {
    const version = services.images.latest(line)?.version;
    if (version === undefined)
      throw new GildError("GILD_IMAGE_NOT_FOUND", `${kind} line ${line} has no version yet`);
    return version;
  };
  const moves: Partial<DeployVersions> = {};
  if (body.image !== undefined) {
    const selector = parseImageSelector(body.image);
    if (selector.line !== spec.image)
      throw new GildError(
        "GILD_BAD_REQUEST",
        `${name} runs on image line ${spec.image}, not ${selector.line}`,
      );
    moves.image = selector.version ?? body.version ?? latest(spec.image, "image");
  }
  if (body.code !== undefined) {
    const selector = parseImageSelector(body.code);
    if (selector.line !== spec.code)
      throw new GildError(
        "GILD_BAD_REQUEST",
        spec.code ? `${name}'s code line is ${spec.code}, not ${selector.line}` : `${name} has no code line`,
        spec.code ? {} : { hint: `create the app with --code LINE to mount app code` },
      );
    moves.code = selector.version ?? latest(spec.code, "code");
  }
  if (body.image === undefined && body.code === undefined) {
    moves.image = body.version ?? latest(spec.image, "image");
    if (spec.code) moves.code = latest(spec.code, "code");
  }
  return moves;
}

/** What these routes use. */
export type AppRouteDeps = Pick<Services, "apps" | "images">;

/** A fastify plugin: register it with its dependencies (`app.register(appRoutes, deps)`). */
export async function appRoutes(app: FastifyInstance, services: AppRouteDeps): Promise<void> {
  app.get(
    "/v1/apps",
    {
      schema: {
        summary: "List apps",
        tags,
        response: jsonResponses("every app", exactObject({ apps: { type: "array", items: appSchema } })),
      },
    },
    async () => ({ apps: services.apps.list() }),
  );

  app.get<{ Params: { name: string } }>(
    "/v1/apps/:name",
    { schema: { summary: "Show an app", tags, params, response: jsonResponses("the app", appSchema) } },
    async (req) => services.apps.get(appName(req.params.name)),
  );

  // The body is the app spec; it is validated as a whole by parseAppSpec (every problem listed, under
  // GILD_INVALID_SPEC), so fastify does not check it: it is documented only.
  app.post<{ Body: unknown }>(
    "/v1/apps",
    {
      schema: {
        summary: "Define an app",
        description: "Stores the definition; nothing runs until a deploy or rollout.",
        tags,
        response: jsonResponses("the app", appSchema),
      },
      config: { documented: { body: appSpecBody } },
    },
    async (req) => {
      const created = services.apps.create(req.body, req.actor);
      req.auditSummary = `created app ${created.spec.name} on ${created.spec.image}`;
      return created;
    },
  );

  app.delete<{ Params: { name: string }; Querystring: { purgeData?: string } }>(
    "/v1/apps/:name",
    {
      schema: {
        summary: "Remove an app",
        description:
          "Takes the app off every host, then forgets it; when a host cannot, the definition is kept (GILD_COMMAND_FAILED with each host's outcome).",
        tags,
        params,
        response: jsonResponses(
          "removed",
          exactObject({
            removed: { type: "string" },
            hosts: {
              type: "array",
              items: {
                type: "object",
                required: ["host", "state"],
                additionalProperties: false,
                properties: {
                  host: { type: "string" },
                  state: { type: "string" },
                  error: serializedErrorSchema,
                },
              },
            },
          }),
        ),
      },
      config: {
        documented: {
          querystring: {
            type: "object",
            properties: {
              purgeData: {
                type: "string",
                enum: ["1", "true"],
                description: "also delete the app's data directory",
              },
            },
          },
        },
      },
    },
    async (req) => {
      const name = appName(req.params.name);
      const purge = req.query.purgeData === "1" || req.query.purgeData === "true";
      const hosts = await services.apps.remove(name, purge);
      const failed = hosts.filter((h) => h.state !== "removed");
      req.auditSummary = `remove app ${name}${purge ? " with data" : ""}: ${failed.length === 0 ? "ok" : `${failed.length} hosts failed`}`;
      if (failed.length > 0) {
        throw new GildError(
          "GILD_COMMAND_FAILED",
          `could not remove ${name} from ${failed.map((f) => f.host).join(", ")}`,
          {
            details: { hosts },
            hint: "the definition is kept; retry when the hosts are back",
          },
        );
      }
      return { removed: name, hosts };
    },
  );

  app.post<{
    Params: { name: string };
    Body: { image?: string; code?: string; version?: number; hosts?: string[] };
  }>(
    "/v1/apps/:name/deploy",
    {
      schema: {
        summary: "Deploy an app now, host by host",
        description:
          "Without a rollout: each host pulls the versions and switches; a host whose new generation is not healthy in time rolls back by itself. With neither image nor code, the latest of both.",
        tags,
        params,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            image: { type: "string", maxLength: 128, description: "line or line@version [the latest]" },
            code: { type: "string", maxLength: 128, description: "line or line@version [the latest]" },
            version: { type: "integer", minimum: 1, description: "the image version, when image names none" },
            hosts: { ...hostNames, maxItems: 100_000 },
          },
        },
        response: ndjsonResponses("each host's progress, then every host's outcome", hostLines, hostsResult),
      },
    },
    async (req, reply) => {
      const name = appName(req.params.name);
      const spec = services.apps.spec(name);
      const moves = deployMoves(services, name, spec, req.body);
      const what = [
        moves.image === undefined ? null : `${spec.image}@${moves.image}`,
        moves.code === undefined ? null : `${spec.code}@${moves.code}`,
      ]
        .filter(Boolean)
        .join(" ");
      return streamNdjson(
        reply,
        async (emit) => ({
          hosts: await services.apps.deploy(name, moves, req.body.hosts, (e) => emit({ type: "host", ...e })),
        }),
        ({ summary }) => {
          req.auditSummary = `deploy ${name} ${what}: ${summary}`;
        },
      );
    },
  );

  app.post<{
    Params: { name: string };
    Body: { add?: string[]; remove?: string[]; purgeData?: boolean };
  }>(
    "/v1/apps/:name/hosts",
    {
      schema: {
        summary: "Add hosts to an app or take it off hosts",
        description:
          "Changes the app's host list and deploys to the added hosts (at the versions the app was last deployed at) or removes it from the others.",
        tags,
        params,
        response: ndjsonResponses(
          "each host's progress, then the app and every host's outcome",
          hostLines,
          exactObject({ app: appSchema, hosts: { type: "array", items: deployEventSchema } }),
        ),
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            add: {
              type: "array",
              items: { type: "string", maxLength: 256 },
              maxItems: 1000,
              description: "host names or label selectors to add",
            },
            remove: {
              type: "array",
              items: { type: "string", maxLength: 256 },
              maxItems: 1000,
              description: "host names or label selectors to take the app off",
            },
            purgeData: { type: "boolean", description: "also delete its data on the removed hosts" },
          },
        },
      },
    },
    async (req, reply) => {
      const name = appName(req.params.name);
      // Refused before the answer streams: a bad request gets its status and coded error.
      const { add, remove } = services.apps.checkHostChange(name, req.body);
      return streamNdjson(
        reply,
        (emit) => services.apps.changeHosts(name, req.body, (e) => emit({ type: "host", ...e })),
        ({ summary }) => {
          req.auditSummary = `app ${name} hosts${add.length > 0 ? ` +${add.join(",")}` : ""}${remove.length > 0 ? ` -${remove.join(",")}` : ""}: ${summary}`;
        },
      );
    },
  );

  app.post<{ Params: { name: string }; Body: { hosts?: string[] } }>(
    "/v1/apps/:name/rollback",
    {
      schema: {
        summary: "Roll an app back to its previous generation",
        tags,
        params,
        body: {
          type: "object",
          additionalProperties: false,
          properties: { hosts: { ...hostNames, maxItems: 100_000 } },
        },
        response: ndjsonResponses("each host's progress, then every host's outcome", hostLines, hostsResult),
      },
    },
    async (req, reply) => {
      const name = appName(req.params.name);
      return streamNdjson(
        reply,
        async (emit) => ({
          hosts: await services.apps.rollback(name, req.body.hosts, (e) => emit({ type: "host", ...e })),
        }),
        ({ summary }) => {
          req.auditSummary = `rollback ${name}: ${summary}`;
        },
      );
    },
  );

  app.get<{
    Params: { name: string };
    Querystring: { host?: string; generation?: string; offset?: string; maxBytes?: string };
  }>(
    "/v1/apps/:name/logs",
    {
      schema: {
        summary: "Read an app's log on one host",
        description: "A chunk of the generation's log; read on from nextOffset.",
        tags,
        params,
        response: jsonResponses(
          "a chunk of the log",
          exactObject({
            generation: { type: "integer" },
            data: { type: "string", description: "the log's bytes, as UTF-8" },
            nextOffset: { type: "integer", description: "where the next read starts" },
            size: { type: "integer", description: "the log's size now" },
          }),
        ),
      },
      // Checked by the handler (GILD_BAD_REQUEST: which host, integers in range): documented only.
      config: {
        documented: {
          querystring: {
            type: "object",
            required: ["host"],
            properties: {
              host: { type: "string", description: "the host's name" },
              generation: { type: "integer", minimum: 0, maximum: 0xffff_ffff, description: "[the current]" },
              offset: { type: "integer", description: "where to start; negative: from the end" },
              maxBytes: { type: "integer", minimum: 0, maximum: 0xffff_ffff },
            },
          },
        },
      },
    },
    async (req) => {
      const name = appName(req.params.name);
      if (!req.query.host) throw new GildError("GILD_BAD_REQUEST", "which host? pass host=<name>");
      // Each travels to the agent as a 32-bit (generation, maxBytes) or 64-bit (offset) number: a bigger
      // one would be cut there, answering about another generation, so it is refused here.
      const num = (text: string | undefined, what: string, max: number) => {
        if (text === undefined) return undefined;
        if (!/^-?[0-9]+$/.test(text)) throw new GildError("GILD_BAD_REQUEST", `${what} must be an integer`);
        const n = Number(text);
        if (Math.abs(n) > max) throw new GildError("GILD_BAD_REQUEST", `${what} must be at most ${max}`);
        return n;
      };
      const generation = num(req.query.generation, "generation", 0xffff_ffff);
      const offset = num(req.query.offset, "offset", Number.MAX_SAFE_INTEGER);
      const maxBytes = num(req.query.maxBytes, "maxBytes", 0xffff_ffff);
      const chunk = await services.apps.logs(name, req.query.host, {
        ...(generation === undefined ? {} : { generation }),
        ...(offset === undefined ? {} : { offset }),
        ...(maxBytes === undefined ? {} : { maxBytes }),
      });
      return {
        generation: chunk.generation,
        data: Buffer.from(chunk.data).toString("utf8"),
        nextOffset: chunk.nextOffset,
        size: chunk.size,
      };
    },
  );
}
