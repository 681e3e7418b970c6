import { DEFAULT_HOST_UPDATE_STRATEGY, resolveHostCommand, resolveHostUpdateStrategy } from "@gild/core";
import { describe, expect, it } from "vitest";

const problems = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { code: string; details: { problems: unknown[] } }).details.problems;
  }
  throw new Error("expected a refusal");
};

describe("resolveHostUpdateStrategy", () => {
  it("applies the documented defaults, frozen", () => {
    const s = resolveHostUpdateStrategy();
    expect(s).toEqual(DEFAULT_HOST_UPDATE_STRATEGY);
    expect(s).toMatchObject({
      canary: 1,
      waves: [{ percent: 25 }, { percent: 100 }],
      maxUnavailable: { count: 1 },
      reboot: "if-required",
      commandTimeoutMs: 30 * 60_000,
      deadlineMs: 10 * 60_000,
      minHealthyMs: 10_000,
      bakeMs: 60_000,
      onFailure: "pause",
    });
    expect(Object.isFrozen(s.waves)).toBe(true);
  });

  it("reads flags as the CLI gives them", () => {
    const s = resolveHostUpdateStrategy({
      canary: "web-1,web-2",
      waves: ["50%", "100%"],
      maxUnavailable: "2",
      reboot: "always",
      commandTimeout: "5m",
      deadline: "3m",
      minHealthy: "2s",
      bake: 0,
      onFailure: "fail",
    });
    expect(s).toMatchObject({
      canary: 2,
      canaryHosts: ["web-1", "web-2"],
      maxUnavailable: { count: 2 },
      reboot: "always",
      commandTimeoutMs: 300_000,
      deadlineMs: 180_000,
      minHealthyMs: 2000,
      bakeMs: 0,
      onFailure: "fail",
    });
  });

  it("lists every problem at once, with its path", () => {
    const list = problems(() =>
      resolveHostUpdateStrategy({
        reboot: "sometimes" as never,
        maxUnavailable: 0,
        waves: [],
        deadline: "soon",
        onFailure: "rollback" as never,
        prefetch: true,
      } as never),
    );
    expect(list.map((p) => (p as { path: string }).path).sort()).toEqual(
      ["deadline", "maxUnavailable", "onFailure", "prefetch", "reboot", "waves"].sort(),
    );
  });

  it("refuses a deadline no host could meet (not longer than minHealthy)", () => {
    expect(problems(() => resolveHostUpdateStrategy({ minHealthy: "10m" }))).toEqual([
      { path: "minHealthy", message: "must be shorter than deadline" },
    ]);
  });
});

describe("resolveHostCommand", () => {
  it("takes an argv as it is, and a shell text as /bin/sh -c TEXT", () => {
    expect(resolveHostCommand({ argv: ["/usr/bin/touch", "/tmp/x"] })).toEqual(["/usr/bin/touch", "/tmp/x"]);
    expect(resolveHostCommand({ shell: "apt-get update && apt-get -y upgrade" })).toEqual([
      "/bin/sh",
      "-c",
      "apt-get update && apt-get -y upgrade",
    ]);
  });

  it.each([
    ["neither", {}],
    ["both", { argv: ["true"], shell: "true" }],
    ["an empty argv", { argv: [] }],
    ["a blank program", { argv: [" "] }],
    ["a non-string argument", { argv: ["echo", 3] }],
    ["an empty shell text", { shell: "  " }],
    ["a NUL byte", { argv: ["echo", "a\0b"] }],
    ["too long", { argv: ["echo", "x".repeat(20_000)] }],
  ])("refuses %s", (_name, raw) => {
    expect(() => resolveHostCommand(raw)).toThrow(expect.objectContaining({ code: "GILD_INVALID_SPEC" }));
  });
});
