import pg from "pg";

/**
 * The SQL texts that write a runMany batch in PostgreSQL, its values written in as literals: one text
 * per ROWS_PER_TEXT rows. node-postgres sends prepared statements one at a time, each waiting for its
 * answer, and a multi-statement text still makes the server parse and plan every statement: writing
 * the 8,899 commands, steps and events of a wave took seconds either way. So:
 *
 * - `INSERT INTO t (...) VALUES (...) [ON CONFLICT ...]` becomes one INSERT with a VALUES row per row;
 * - `UPDATE t SET a = $1, ... WHERE k = $2 AND ...` becomes one `UPDATE t SET a = v.a ... FROM (VALUES
 *   ...) AS v WHERE t.k = v.k ...` (when no value of the batch is NULL, whose type a VALUES list cannot
 *   tell);
 * - anything else is sent as statements joined by `;` in one text.
 *
 * The callers' batches never repeat a key (they are maps by key), which both one-statement forms need.
 */
const ROWS_PER_TEXT = 500;

/** A value as an SQL literal: the store's values are text, whole numbers, bytes and null. */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`cannot store the number ${value}`);
    return String(value);
  }
  if (typeof value === "bigint") return String(value);
  // Quotes and backslashes doubled (an E'' literal when there is a backslash).
  if (typeof value === "string") return pg.escapeLiteral(value);
  if (value instanceof Uint8Array)
    return `decode('${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}', 'hex')`;
  throw new Error(`cannot store a value of type ${typeof value}`);
}

const fill = (template: string, values: readonly unknown[]) =>
  template.replace(/\$(\d+)/g, (_, n: string) => sqlLiteral(values[Number(n) - 1]));

const INSERT = /^\s*(INSERT\s+INTO\s+\w+\s*\([^)]*\)\s*VALUES)\s*(\([^()]*\))([\s\S]*)$/i;
const UPDATE = /^\s*UPDATE\s+(\w+)\s+SET\s+([\s\S]+?)\s+WHERE\s+([\s\S]+?)\s*$/i;
const ASSIGNMENT = /^(\w+)\s*=\s*\$(\d+)$/;

/** `a = $1, b = $2` (or `x = $3 AND y = $4`) as [column, parameter] pairs; null for anything else. */
function pairs(text: string, separator: RegExp): Array<[string, number]> | null {
  const out: Array<[string, number]> = [];
  for (const part of text.split(separator)) {
    const m = ASSIGNMENT.exec(part.trim());
    if (!m) return null;
    out.push([m[1] as string, Number(m[2])]);
  }
  return out;
}

export function batchTexts(text: string, rows: ReadonlyArray<readonly unknown[]>): string[] {
  const texts: string[] = [];
  const insert = INSERT.exec(text);
  const update = insert ? null : UPDATE.exec(text);
  const set = update ? pairs(update[2] as string, /,/) : null;
  const where = update ? pairs(update[3] as string, /\s+AND\s+/i) : null;
  const distinct =
    set && where && new Set([...set, ...where].map(([, n]) => n)).size === set.length + where.length;
  for (let i = 0; i < rows.length; i += ROWS_PER_TEXT) {
    const chunk = rows.slice(i, i + ROWS_PER_TEXT);
    if (insert) {
      const [, head, tuple, tail] = insert as unknown as [string, string, string, string];
      texts.push(`${head} ${chunk.map((values) => fill(tuple, values)).join(",\n")}${tail}`);
    } else if (
      update &&
      set &&
      where &&
      distinct &&
      chunk.every((values) => values.every((v) => v !== null))
    ) {
      const params = [...set, ...where].map(([, n]) => n);
      const columns = params.map((n) => `p${n}`);
      const valuesList = chunk
        .map((values) => `(${params.map((n) => sqlLiteral(values[n - 1])).join(", ")})`)
        .join(",\n");
      texts.push(
        `UPDATE ${update[1]} AS t SET ${set.map(([c, n]) => `${c} = v.p${n}`).join(", ")}
         FROM (VALUES ${valuesList}) AS v(${columns.join(", ")})
         WHERE ${where.map(([c, n]) => `t.${c} = v.p${n}`).join(" AND ")}`,
      );
    } else {
      texts.push(chunk.map((values) => fill(text, values)).join(";\n"));
    }
  }
  return texts;
}
