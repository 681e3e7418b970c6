import { resolveControllerConfig } from "@gild/controller";
import { describe, expect, it } from "vitest";

function problemsOf(
  raw: Parameters<typeof resolveControllerConfig>[0],
): Array<{ path: string; message: string }> {
  try {
    resolveControllerConfig(raw);
  } catch (err) {
    expect(err).toMatchObject({ code: "GILD_CONFIG_INVALID" });
    return (err as { details: { problems: Array<{ path: string; message: string }> } }).details.problems;
  }
  return [];
}

describe("controller config: connections that have not authenticated", () => {
  it("defaults to a 10 s handshake timeout and 1024 pending connections", () => {
    const config = resolveControllerConfig({});
    expect(config.handshakeTimeoutMs).toBe(10_000);
    expect(config.maxPendingConnections).toBe(1024);
  });

  it("takes both from the file or as flag text", () => {
    const config = resolveControllerConfig({ handshakeTimeout: "3s", maxPendingConnections: "200" });
    expect(config.handshakeTimeoutMs).toBe(3000);
    expect(config.maxPendingConnections).toBe(200);
  });

  it("refuses values out of bounds, every one with its path", () => {
    const problems = problemsOf({ handshakeTimeout: "2m", maxPendingConnections: 5 });
    expect(problems.map((p) => p.path).sort()).toEqual(["handshakeTimeout", "maxPendingConnections"]);
    expect(problemsOf({ handshakeTimeout: "10ms" })).toEqual([
      { path: "handshakeTimeout", message: "must be at least 1s" },
    ]);
    for (const bad of ["many", "1e9", 70_000, 1.5, -1])
      expect(problemsOf({ maxPendingConnections: bad as number })).toEqual([
        { path: "maxPendingConnections", message: "must be a whole number from 16 to 65536" },
      ]);
  });
});

describe("controller config: the database", () => {
  it("is SQLite in the data dir unless told otherwise", () => {
    const config = resolveControllerConfig({ dataDir: "/srv/gild" });
    expect(config.database).toEqual({ kind: "sqlite", path: "/srv/gild/gild.db" });
    expect(resolveControllerConfig({ database: "/data/state.db" }).database).toEqual({
      kind: "sqlite",
      path: "/data/state.db",
    });
  });

  it("is PostgreSQL for a postgres:// or postgresql:// URL", () => {
    for (const url of [
      "postgres://gild@db.internal/gild",
      "postgresql://gild:pw@10.0.0.5:5433/gild?sslmode=require",
    ])
      expect(resolveControllerConfig({ database: url }).database).toEqual({ kind: "postgres", url });
  });

  it("refuses a relative path, another kind of URL, and what is not text", () => {
    expect(problemsOf({ database: "gild.db" })).toEqual([
      { path: "database", message: "must be a postgres:// URL or an absolute path" },
    ]);
    expect(problemsOf({ database: "mysql://db/gild" })).toEqual([
      { path: "database", message: "only postgres:// (or postgresql://) URLs are supported" },
    ]);
    expect(problemsOf({ database: 5 as never })).toEqual([
      { path: "database", message: "must be a postgres:// URL or an absolute path" },
    ]);
  });
});
