// Writes docs/errors.md from the error table in packages/core (run after `pnpm build`).
// packages/core/test/errors-doc.test.ts fails when the committed file is not current.
import { writeFileSync } from "node:fs";
import { errorCodes } from "../packages/core/dist/index.js";

export function renderErrorDocs(codes) {
  const rows = Object.entries(codes).map(([code, { status, doc }]) => `| \`${code}\` | ${status} | ${doc} |`);
  return `# Error codes

Every error gild reports carries one of these stable codes, in API answers (\`{"error": {"code", "message",
"hint"}}\` with the HTTP status below), on the agent control channel, and in the CLI's output
(\`error: <message> [<code>]\` then \`hint: ...\`; with \`--json\`, the same object on stdout). Scripts
should match on the code, never on the message. Generated from packages/core/src/errors.ts by
\`pnpm docs:errors\`.

| Code | HTTP | Meaning |
| --- | --- | --- |
${rows.join("\n")}
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL("../docs/errors.md", import.meta.url), renderErrorDocs(errorCodes));
}
