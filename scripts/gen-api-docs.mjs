// Writes docs/api.md from the controller's OpenAPI document (run after `pnpm build`): every route with
// its access, parameters, body and answers. packages/controller/test/openapi.test.ts fails when the
// file is not current.
import { writeFileSync } from "node:fs";

const METHODS = ["get", "put", "post", "delete", "patch"];
const DEPTH = 3;

const cell = (text) =>
  String(text ?? "")
    .replace(/\|/g, "\\|")
    .replace(/\n/g, " ");

/** A schema's type as one short text: `string`, `integer \| null`, `"a" \| "b"`, `host[]`. */
function typeOf(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.oneOf) return schema.oneOf.map(typeOf).join(" | ");
  const types = [schema.type ?? "any"].flat();
  return types
    .map((t) => {
      if (t === "array") {
        const item = typeOf(schema.items);
        return item.includes(" ") ? `(${item})[]` : `${item}[]`;
      }
      if (t === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object")
        return `map of ${typeOf(schema.additionalProperties)}`;
      return t;
    })
    .join(" | ");
}

function constraints(schema) {
  const out = [];
  if (schema.minimum !== undefined) out.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) out.push(`≤ ${schema.maximum}`);
  if (schema.maxLength !== undefined) out.push(`at most ${schema.maxLength} characters`);
  if (schema.minItems !== undefined) out.push(`at least ${schema.minItems}`);
  if (schema.maxItems !== undefined) out.push(`at most ${schema.maxItems}`);
  if (schema.pattern !== undefined) out.push(`matches \`${schema.pattern}\``);
  return out.length === 0 ? "" : ` (${out.join(", ")})`;
}

/** The fields of an object schema as table rows, nested ones by their dotted path. */
function fieldRows(schema, prefix = "", depth = 0) {
  const rows = [];
  const object =
    schema?.type === "array" || (Array.isArray(schema?.type) && schema.type.includes("array"))
      ? schema.items
      : schema;
  const properties = object?.properties ?? {};
  const required = new Set(object?.required ?? []);
  const suffix = object === schema ? "" : "[]";
  for (const [name, field] of Object.entries(properties)) {
    const path = `${prefix}${suffix}${prefix || suffix ? "." : ""}${name}`.replace(/^\./, "");
    rows.push(
      `| \`${cell(path)}\` | ${cell(typeOf(field))} | ${required.has(name) ? "yes" : ""} | ${cell(`${field.description ?? ""}${constraints(field)}`.trim())} |`,
    );
    const inner =
      field.type === "array" || (Array.isArray(field.type) && field.type.includes("array"))
        ? field.items
        : field;
    if (depth + 1 < DEPTH && inner?.properties && Object.keys(inner.properties).length > 0)
      rows.push(...fieldRows(field, path, depth + 1));
  }
  return rows;
}

function fieldTable(schema) {
  const rows = fieldRows(schema);
  return rows.length === 0
    ? []
    : ["| Field | Type | Required | Meaning |", "| --- | --- | --- | --- |", ...rows, ""];
}

function operation(method, path, op) {
  const out = [`### \`${method.toUpperCase()} ${path}\``, ""];
  out.push(`${op.summary}.${op.description ? ` ${op.description}` : ""}`, "");
  const access = op["x-gild-access"];
  out.push(
    access === "public"
      ? "Access: public (no token)."
      : access === "metrics"
        ? "Access: the scrape token, or any user."
        : access === "admin"
          ? "Access: admin."
          : `Access: ${access} or above.`,
    "",
  );
  const params = op.parameters ?? [];
  if (params.length > 0) {
    out.push("| Parameter | In | Type | Required | Meaning |", "| --- | --- | --- | --- | --- |");
    for (const p of params)
      out.push(
        `| \`${p.name}\` | ${p.in} | ${cell(typeOf(p.schema))} | ${p.required ? "yes" : ""} | ${cell(`${p.description ?? ""}${constraints(p.schema ?? {})}`.trim())} |`,
      );
    out.push("");
  }
  const body = op.requestBody?.content?.["application/json"]?.schema;
  if (body) {
    out.push(`Body (JSON)${body.description ? `: ${body.description}` : ""}:`, "", ...fieldTable(body));
  }
  out.push("Answers:", "");
  const errors = [];
  for (const [status, response] of Object.entries(op.responses)) {
    if (/^[45]XX$/.test(status)) {
      errors.push(`**${status}**`);
      continue;
    }
    const contentType = Object.keys(response.content ?? {})[0];
    out.push(`- **${status}**${contentType ? ` \`${contentType}\`` : ""}: ${response.description}`);
  }
  if (errors.length > 0) out.push(`- ${errors.join(", ")}: the error answer (Errors, above)`);
  out.push("");
  const ok = Object.entries(op.responses).find(([status]) => status.startsWith("2"))?.[1];
  const okSchema = ok?.content?.["application/json"]?.schema;
  const result = ok?.content?.["application/x-ndjson"]?.schema?.properties?.result;
  if (okSchema) out.push(...fieldTable(okSchema));
  else if (result) out.push("The last line's `result`:", "", ...fieldTable(result));
  return out;
}

/** docs/api.md from an OpenAPI document (what GET /v1/openapi.json serves). */
export function renderApiDocs(doc) {
  const out = [
    `# ${doc.info.title}`,
    "",
    "Generated from the controller's OpenAPI 3.1 document (`GET /v1/openapi.json`, which any user may read)",
    "by `pnpm docs:api`. The CLI (docs/cli.md) drives every route below; the agents' WebSockets",
    "(`/v1/agent`, `/v1/artifacts/...`) are not part of this API.",
    "",
    doc.info.description,
    "",
  ];
  const anyOp = Object.values(doc.paths).flatMap((item) => METHODS.map((m) => item[m]).filter(Boolean))[0];
  const errorAnswers = Object.entries(anyOp?.responses ?? {}).filter(([status]) => /^[45]XX$/.test(status));
  if (errorAnswers.length > 0) {
    out.push("## Errors", "");
    for (const [status, response] of errorAnswers) out.push(`- **${status}**: ${response.description}`);
    out.push("", ...fieldTable(errorAnswers[0][1].content?.["application/json"]?.schema));
  }
  const byTag = new Map((doc.tags ?? []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths))
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method, path, op]);
    }
  const tags = new Map((doc.tags ?? []).map((t) => [t.name, t.description]));
  for (const [tag, ops] of byTag) {
    if (ops.length === 0) continue;
    out.push(`## ${tag}`, "");
    if (tags.get(tag)) out.push(tags.get(tag), "");
    for (const [method, path, op] of ops) out.push(...operation(method, path, op));
  }
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { describeApi } = await import("../packages/controller/dist/index.js");
  writeFileSync(new URL("../docs/api.md", import.meta.url), renderApiDocs(await describeApi()));
}
