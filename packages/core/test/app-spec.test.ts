import { appSpecHash, isGildError, parseAppSpec } from "@gild/core";
import { describe, expect, it } from "vitest";

const valid = {
  name: "blog",
  image: "php",
  hosts: ["web-1", "role=web"],
  cmd: "exec /usr/local/bin/serve 8080 /srv/app",
  env: { APP_ENV: "prod", WORKERS: 4 },
  data: "/srv/app/",
  port: 8080,
  health: { http: "http://127.0.0.1:8080/healthz", interval: "500ms", minHealthy: "2s" },
  stopTimeout: "5s",
};

describe("app specs", () => {
  it("applies defaults and normalizes", () => {
    const spec = parseAppSpec(valid);
    expect(spec).toMatchObject({
      name: "blog",
      command: ["/bin/sh", "-c", "exec /usr/local/bin/serve 8080 /srv/app"],
      env: { APP_ENV: "prod", WORKERS: "4" },
      data: "/srv/app",
      stopTimeoutMs: 5000,
      healthyDeadlineMs: 120_000,
      health: {
        kind: "http",
        target: "http://127.0.0.1:8080/healthz",
        intervalMs: 500,
        timeoutMs: 1000,
        minHealthyMs: 2000,
      },
    });
    expect(parseAppSpec({ ...valid, health: "tcp://127.0.0.1:8080" }).health).toMatchObject({
      kind: "tcp",
      target: "127.0.0.1:8080",
    });
    // The same tcp target rule as the probes that run it: IPv6 in brackets, ports 1-65535.
    expect(parseAppSpec({ ...valid, health: { tcp: "[::1]:8443" } }).health?.target).toBe("[::1]:8443");
    expect(() => parseAppSpec({ ...valid, health: { tcp: "127.0.0.1:70000" } })).toThrow(
      expect.objectContaining({ details: { problems: [expect.objectContaining({ path: "health.tcp" })] } }),
    );
    expect(parseAppSpec({ ...valid, health: { exec: "test -f /ok" } }).health?.command).toEqual([
      "/bin/sh",
      "-c",
      "test -f /ok",
    ]);
    expect(parseAppSpec({ ...valid, hosts: "a, b" }).hosts).toEqual(["a", "b"]);
  });

  it("lists every problem with its path, at once", () => {
    const err = (() => {
      try {
        parseAppSpec({
          name: "Blog!",
          image: "",
          hosts: [],
          command: [],
          env: { "1BAD": "x", OK: { nested: true } },
          data: "relative",
          port: 70000,
          health: { http: "ftp://x", tcp: "a:1" },
          stopTimeout: "soon",
          surprise: true,
        });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isGildError(err, "GILD_INVALID_SPEC")).toBe(true);
    const paths = (err as { details: { problems: Array<{ path: string }> } }).details.problems
      .map((p) => p.path)
      .sort();
    expect(paths).toEqual([
      "command",
      "data",
      "env.1BAD",
      "env.OK",
      "health",
      "hosts",
      "image",
      "name",
      "port",
      "stopTimeout",
      "surprise",
    ]);
  });

  it("takes a code line mounted at codeMount (default /srv/code), apart from the data mount", () => {
    const plain = parseAppSpec(valid);
    expect(plain).toMatchObject({ code: null, codeMount: null });
    expect(parseAppSpec({ ...valid, code: "blog-code" })).toMatchObject({
      code: "blog-code",
      codeMount: "/srv/code",
      data: "/srv/app",
    });
    expect(parseAppSpec({ ...valid, code: "src", codeMount: "/var/www/" }).codeMount).toBe("/var/www");
    const problems = (raw: object) => {
      try {
        parseAppSpec({ ...valid, ...raw });
      } catch (err) {
        return (err as { details: { problems: Array<{ path: string }> } }).details.problems.map(
          (p) => p.path,
        );
      }
      return [];
    };
    expect(problems({ code: "Bad Name" })).toEqual(["code"]);
    expect(problems({ code: "php" })).toEqual(["code"]);
    expect(problems({ codeMount: "/srv/code" })).toEqual(["codeMount"]);
    expect(problems({ code: "src", codeMount: "relative" })).toEqual(["codeMount"]);
    expect(problems({ code: "src", codeMount: "/" })).toEqual(["codeMount"]);
    expect(problems({ code: "src", data: "/srv/app", codeMount: "/srv/app/code" })).toEqual(["codeMount"]);
    expect(problems({ code: "src", data: "/srv/app/data", codeMount: "/srv/app" })).toEqual(["codeMount"]);
    expect(problems({ code: "src", data: "/srv/data", codeMount: "/srv/app" })).toEqual([]);
  });

  it("fingerprints what a generation runs, not where it runs", () => {
    const spec = parseAppSpec(valid);
    expect(appSpecHash(spec)).toBe(appSpecHash({ ...spec, env: { WORKERS: "4", APP_ENV: "prod" } }));
    expect(appSpecHash(spec)).toBe(appSpecHash(parseAppSpec({ ...valid, hosts: ["other"] })));
    expect(appSpecHash(spec)).not.toBe(appSpecHash(parseAppSpec({ ...valid, env: { APP_ENV: "dev" } })));
    // An app without code keeps the fingerprint it had before apps had code (running hosts stay current).
    const { code: _c, codeMount: _m, ...withoutCodeFields } = spec;
    expect(appSpecHash(spec)).toBe(appSpecHash(withoutCodeFields as typeof spec));
    const withCode = parseAppSpec({ ...valid, code: "src" });
    expect(appSpecHash(withCode)).not.toBe(appSpecHash(spec));
    expect(appSpecHash(withCode)).not.toBe(
      appSpecHash(parseAppSpec({ ...valid, code: "src", codeMount: "/x" })),
    );
  });
});
