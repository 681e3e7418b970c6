import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without type declarations
import { renderCliDocs } from "../../../scripts/gen-cli-docs.mjs";

describe("docs/cli.md", () => {
  it("documents every command and flag, and is current (pnpm docs:cli)", () => {
    const committed = readFileSync(new URL("../../../docs/cli.md", import.meta.url), "utf8");
    expect(committed).toBe(renderCliDocs());
    for (const command of [
      "gild rollout start",
      "gild app deploy",
      "gild image push",
      "gild agent join",
      "gild token create",
    ]) {
      expect(committed).toContain(command);
    }
  });
});
