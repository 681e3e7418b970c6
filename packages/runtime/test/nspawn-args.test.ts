import { isGildError } from "@gild/core";
import {
  buildCommandNspawnArgs,
  buildNspawnArgs,
  type ContainerSpec,
  machineName,
  validateContainerSpec,
} from "@gild/runtime";
import { describe, expect, it } from "vitest";

const base: ContainerSpec = {
  app: "web",
  generation: 4,
  rootfs: "/pool/apps/web/4",
  command: ["/usr/local/bin/serve", "8080", "/data"],
  env: { TZ: "UTC", APP_MODE: "production" },
  binds: [
    { source: "/pool/data/web", target: "/data" },
    { source: "/etc/ssl/certs", target: "/etc/ssl/certs", readOnly: true },
  ],
  logFile: "/var/log/gild/web-4.log",
  stopTimeoutMs: 10_000,
};

describe("nspawn arguments", () => {
  it("builds the measured option set, binds, sorted env, and the command after --", () => {
    const machine = machineName("web", 4, "/run/gild");
    expect(buildNspawnArgs(base, machine)).toEqual([
      "--quiet",
      "--register=no",
      "--keep-unit",
      "--console=pipe",
      `--machine=${machine}`,
      "--directory=/pool/apps/web/4",
      "--resolv-conf=bind-host",
      "--timezone=off",
      "--link-journal=no",
      "--kill-signal=SIGTERM",
      "--bind=/pool/data/web:/data",
      "--bind-ro=/etc/ssl/certs:/etc/ssl/certs",
      "--setenv=APP_MODE=production",
      "--setenv=TZ=UTC",
      "--",
      "/usr/local/bin/serve",
      "8080",
      "/data",
    ]);
  });

  it("adds the network namespace, and escapes colons and backslashes in bind paths", () => {
    const args = buildNspawnArgs(
      { ...base, binds: [{ source: "/srv/a:b", target: "/x\\y" }], env: {}, netnsPath: "/run/netns/host-2" },
      "m",
    );
    expect(args).toContain("--bind=/srv/a\\:b:/x\\\\y");
    expect(args).toContain("--network-namespace-path=/run/netns/host-2");
    expect(args.indexOf("--network-namespace-path=/run/netns/host-2")).toBeLessThan(args.indexOf("--"));
  });

  it("keeps env values with spaces and '=' as one argument", () => {
    const args = buildNspawnArgs({ ...base, env: { DSN: "host=db user=app pass=a b" } }, "m");
    expect(args).toContain("--setenv=DSN=host=db user=app pass=a b");
  });

  it("gives an image build's command the same base options, nspawn's own init, and its env", () => {
    const args = buildCommandNspawnArgs(
      "/pool/.staging/b/rootfs",
      ["apt-get", "-y", "upgrade"],
      { A: "1" },
      "gild-build-1",
    );
    const app = buildNspawnArgs(base, "gild-build-1");
    const shared = app
      .slice(0, app.indexOf("--kill-signal=SIGTERM"))
      .map((a) => (a.startsWith("--directory=") ? "--directory=/pool/.staging/b/rootfs" : a));
    expect(args.slice(0, shared.length)).toEqual(shared);
    expect(args.slice(shared.length)).toEqual([
      "--as-pid2",
      "--setenv=A=1",
      "--",
      "apt-get",
      "-y",
      "upgrade",
    ]);
  });
});

describe("machine names", () => {
  it("are valid hostnames of at most 63 characters, deterministic, and unique per run dir", () => {
    const long = `a${"b".repeat(62)}`;
    for (const [app, gen] of [
      ["web", 1],
      [long, 123456789],
      ["x-1", 2],
    ] as const) {
      const name = machineName(app, gen, "/run/gild");
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^[a-z0-9][a-z0-9-]*[a-z0-9]$/);
      expect(machineName(app, gen, "/run/gild")).toBe(name);
    }
    expect(machineName("web", 1, "/run/a")).not.toBe(machineName("web", 1, "/run/b"));
    expect(machineName("web", 1, "/run/a")).not.toBe(machineName("web", 2, "/run/a"));
    expect(machineName(`${long}`, 1, "/r")).not.toBe(machineName(`${long.slice(0, -1)}c`, 1, "/r"));
    expect(machineName("web", 12, "/run/gild")).toMatch(/^gild-web-12-[0-9a-f]{8}$/);
  });
});

describe("container spec validation", () => {
  it("accepts a good spec", () => {
    expect(validateContainerSpec(base)).toBe(base);
  });

  it("reports every problem at once with GILD_INVALID_SPEC", () => {
    const bad = {
      ...base,
      app: "Web_App",
      generation: 0,
      rootfs: "relative/root",
      command: [],
      env: { "BAD-NAME": "x", OK: "fine" },
      binds: [{ source: "/a/../etc", target: "data" }],
      logFile: "",
      stopTimeoutMs: -1,
      netnsPath: "netns",
    } as ContainerSpec;
    let caught: unknown;
    try {
      validateContainerSpec(bad);
    } catch (err) {
      caught = err;
    }
    expect(isGildError(caught, "GILD_INVALID_SPEC")).toBe(true);
    const problems = (caught as { details: { problems: string[] } }).details.problems;
    expect(problems.map((p) => p.split(":")[0])).toEqual([
      "app",
      "generation",
      "rootfs",
      "logFile",
      "netnsPath",
      "command",
      "env.BAD-NAME",
      "binds[0].source",
      "binds[0].target",
      "stopTimeoutMs",
    ]);
  });

  it("refuses the host's root as a container root", () => {
    expect(() => validateContainerSpec({ ...base, rootfs: "/" })).toThrow(/host's root/);
  });
});
