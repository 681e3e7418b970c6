import { readFileSync } from "node:fs";
import { errorCodes, GildError, gildErrorFrom, isGildError, toGildError } from "@gild/core";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without type declarations
import { renderErrorDocs } from "../../../scripts/gen-error-docs.mjs";

describe("error codes", () => {
  it("carry status, hint and details, and serialize for the wire", () => {
    const err = new GildError("GILD_STREAM_HASH_MISMATCH", "bad hash", {
      hint: "retry",
      details: { host: "a" },
    });
    expect(err.status).toBe(422);
    expect(err.toJSON()).toEqual({
      code: "GILD_STREAM_HASH_MISMATCH",
      message: "bad hash",
      hint: "retry",
      details: { host: "a" },
    });
    const back = gildErrorFrom(err.toJSON());
    expect(isGildError(back, "GILD_STREAM_HASH_MISMATCH")).toBe(true);
    expect(back.hint).toBe("retry");
  });

  it("keep an unknown code from a newer peer visible in the message", () => {
    const err = gildErrorFrom({ code: "GILD_FROM_THE_FUTURE", message: "new thing" });
    expect(err.code).toBe("GILD_INTERNAL");
    expect(err.message).toContain("GILD_FROM_THE_FUTURE");
  });

  it("wrap plain errors as GILD_INTERNAL", () => {
    expect(toGildError(new Error("boom"))).toMatchObject({ code: "GILD_INTERNAL", message: "boom" });
  });

  it("all start with GILD_, have a status and a doc line", () => {
    for (const [code, { status, doc }] of Object.entries(errorCodes)) {
      expect(code).toMatch(/^GILD_[A-Z0-9_]+$/);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(doc.length).toBeGreaterThan(10);
    }
  });

  it("are documented in docs/errors.md, which is current (pnpm docs:errors)", () => {
    const committed = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
    expect(committed).toBe(renderErrorDocs(errorCodes));
  });
});
