import { routePath } from "@gild/api-client";
import { describe, expect, it } from "vitest";

describe("routePath", () => {
  it("fills path parameters, URI-encoded, and appends the query without empty fields", () => {
    expect(
      routePath("GET /v1/apps/:name/logs", {
        params: { name: "a b/c" },
        query: { host: "h-1", offset: "-5", generation: undefined },
      }),
    ).toEqual({
      method: "GET",
      path: "/v1/apps/a%20b%2Fc/logs?host=h-1&offset=-5",
    });
    expect(routePath("POST /v1/rollouts/:id/:verb", { params: { id: "current", verb: "pause" } })).toEqual({
      method: "POST",
      path: "/v1/rollouts/current/pause",
    });
    expect(routePath("GET /v1/hosts", {})).toEqual({ method: "GET", path: "/v1/hosts" });
  });

  it("refuses a route whose parameter has no value", () => {
    expect(() => routePath("GET /v1/hosts/:name", { params: {} })).toThrow(/no value for :name/);
  });
});
