// Pieces every route schema uses: the error answer, JSON, NDJSON and Server-Sent Events responses,
// and path parameters. The document is built from the route schemas by @fastify/swagger (openapi.ts).
import { type JsonSchema, serializedErrorSchema } from "./view-schemas.js";

/** What every failed request answers, with the code's HTTP status (http-errors.ts). */
const errorAnswer: JsonSchema = {
  type: "object",
  required: ["error"],
  additionalProperties: false,
  properties: { error: serializedErrorSchema },
};

/** The error answers of every route: 4xx for the caller's mistakes, 5xx for the controller's. */
export const errorResponses = {
  "4xx": {
    ...errorAnswer,
    description:
      "refused: `{error: {code, message, hint?, details?}}` with the code's status (400 a bad request, 401 no or an unknown token, 403 a role too low, 404, 409 a conflict; docs/errors.md)",
  },
  "5xx": {
    ...errorAnswer,
    description: "failed: the same shape (500 an internal error, 503 the store cannot write)",
  },
};

/** A JSON answer (200 unless told) and the error answers. */
export function jsonResponses(
  description: string,
  schema: JsonSchema,
  status = 200,
): Record<string, JsonSchema> {
  return { [status]: { ...schema, description }, ...errorResponses };
}

/**
 * A long operation answered as newline-delimited JSON (ndjson.ts): `started`, progress lines of
 * `lineTypes`, `keepalive` every 10 s, then one `result` (with `result`) or `error` (with `error`).
 * The status is 200 once streaming starts; refusals before it are the error answers.
 */
export function ndjsonResponses(
  description: string,
  lineTypes: Record<string, string>,
  result: JsonSchema,
): Record<string, JsonSchema> {
  const types = { ...lineTypes, started: "first, at once", keepalive: "every 10 s while it runs" };
  return {
    200: {
      description: `${description}. One JSON object a line; its \`type\`: ${Object.entries(types)
        .map(([t, what]) => `\`${t}\` (${what})`)
        .join(", ")}; the last line is \`result\` (\`{type, result}\`) or \`error\` (\`{type, error}\`)`,
      content: {
        "application/x-ndjson": {
          schema: {
            type: "object",
            required: ["type"],
            additionalProperties: true,
            properties: {
              type: { type: "string", enum: [...Object.keys(types), "result", "error"] },
              result,
              error: serializedErrorSchema,
            },
          },
        },
      },
    },
    ...errorResponses,
  };
}

/** A live view as Server-Sent Events (event-stream.ts): `data:` lines, each one JSON object. */
export function eventStreamResponses(description: string, eventTypes: string[]): Record<string, JsonSchema> {
  return {
    200: {
      description: `${description}. Each event's data is one JSON object whose \`type\` is ${eventTypes
        .map((t) => `\`${t}\``)
        .join(", ")}; a comment every 15 s keeps the connection alive; the stream ends when the job is over`,
      content: { "text/event-stream": { schema: { type: "string" } } },
    },
    ...errorResponses,
  };
}

/** Path parameters: each a string, described (never constrained here: the handlers check them). */
export function pathParams(params: Record<string, string>): JsonSchema {
  return {
    type: "object",
    required: Object.keys(params),
    properties: Object.fromEntries(
      Object.entries(params).map(([name, description]) => [name, { type: "string", description }]),
    ),
  };
}

/** `{removed: ...}`: what a DELETE answers. */
export function removedSchema(description: string, extra: Record<string, JsonSchema> = {}): JsonSchema {
  return {
    type: "object",
    required: ["removed", ...Object.keys(extra)],
    additionalProperties: false,
    properties: { removed: { type: "string", description }, ...extra },
  };
}
