import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  controllerUnitEnvironment,
  createLoopBtrfs,
  findRepoRoot,
  gildCliPath,
  type LoopBtrfs,
  parseUnit,
  unitEnvironment,
  unitValue,
  unitValues,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The files an operator puts on real servers (deploy/): systemd units, example configs, installers,
// checked against the code they describe so that they cannot drift from it.

const root = findRepoRoot();
const deploy = join(root, "deploy");
const installers = ["install-controller", "install-agent"] as const;

/** The parts of @gild/controller and @gild/agent these tests use. */
interface ControllerModule {
  resolveControllerConfig(raw: Record<string, unknown>): {
    dataDir: string;
    pool: string;
    listenPort: number;
    publicUrl: string;
    insecureDev: boolean;
  };
}
interface AgentModule {
  resolveAgentConfig(raw: Record<string, unknown>): { stateDir: string; pool: string; runtime: string };
  EXIT_REFUSED: number;
}

/**
 * Import a workspace package by its public name. The test package does not depend on the daemons'
 * packages, so they are resolved from the CLI, which does (and which is what runs them).
 */
async function importFromCli<T>(name: string): Promise<T> {
  const require = createRequire(join(root, "packages/cli/package.json"));
  return (await import(pathToFileURL(require.resolve(name)).href)) as T;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync(file, args, { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
  if (result.error) throw result.error;
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    all: result.stdout + result.stderr,
  };
}

const unitText = (name: string) => readFileSync(join(deploy, "systemd", name), "utf8");
const exampleConfig = (role: string) =>
  JSON.parse(readFileSync(join(deploy, "config", `${role}.example.json`), "utf8")) as Record<string, unknown>;
const configurationDoc = () => readFileSync(join(root, "docs/configuration.md"), "utf8");

/** The setting names a config resolver knows, read from its KNOWN_SETTINGS list. */
function knownSettings(sourceFile: string): string[] {
  const source = readFileSync(join(root, sourceFile), "utf8");
  const block = /const KNOWN_SETTINGS = \[([^\]]*)\]/.exec(source);
  if (!block) throw new Error(`no KNOWN_SETTINGS list in ${sourceFile}`);
  return [...(block[1] as string).matchAll(/"([A-Za-z]+)"/g)].map((m) => m[1] as string);
}

const units = ["gild-controller.service", "gild-agent.service"];

describe("systemd units", () => {
  it("are plain unit syntax with the sections systemd expects", () => {
    for (const name of units) {
      const unit = parseUnit(unitText(name));
      expect([...unit.keys()], name).toEqual(["Unit", "Service", "Install"]);
      expect(unitValue(unit, "Install", "WantedBy"), name).toBe("multi-user.target");
      expect(unitValue(unit, "Service", "Type"), name).toBe("simple");
      expect(unitValue(unit, "Service", "User"), name).toBe("root");
      expect(unitValue(unit, "Service", "Restart"), name).toBe("on-failure");
      expect(unitValue(unit, "Service", "KillMode"), name).toBe("mixed");
      expect(unitValue(unit, "Service", "TimeoutStopSec"), name).toMatch(/^\d+s$/);
      expect(unitValue(unit, "Service", "StandardOutput"), name).toBe("journal");
      expect(unitValue(unit, "Unit", "StartLimitIntervalSec"), name).toBe("0");
      expect(unitValue(unit, "Unit", "After"), name).toContain("network-online.target");
      // Hardening every unit keeps.
      expect(unitValue(unit, "Service", "NoNewPrivileges"), name).toBe("yes");
      expect(unitValue(unit, "Service", "ProtectSystem"), name).toBe("strict");
      expect(unitValues(unit, "Service", "ReadWritePaths"), name).toContain("/var/lib/gild");
      expect(unitValue(unit, "Service", "ProtectHome"), name).toMatch(/^(yes|read-only)$/);
      expect(unitValue(unit, "Service", "PrivateTmp"), name).toBe("yes");
      expect(unitValue(unit, "Service", "ProtectKernelTunables"), name).toBe("yes");
      expect(unitValue(unit, "Service", "ProtectKernelModules"), name).toBe("yes");
      // What would break btrfs receive, debootstrap or nspawn is never set.
      for (const breaking of [
        "PrivateDevices",
        "DevicePolicy",
        "DeviceAllow",
        "ProtectClock",
        "RestrictSUIDSGID",
        "RestrictNamespaces",
        "SystemCallFilter",
        "MemoryDenyWriteExecute",
        "PrivateUsers",
        "PrivateNetwork",
        "UMask",
      ]) {
        expect(unitValue(unit, "Service", breaking), `${name} sets ${breaking}`).toBeUndefined();
      }
    }
  });

  it("run the installed CLI with the config files the installers write", () => {
    const controller = parseUnit(unitText("gild-controller.service"));
    const agent = parseUnit(unitText("gild-agent.service"));
    expect(unitValue(controller, "Service", "ExecStart")).toBe(
      "/usr/local/bin/gild controller run --config /etc/gild/controller.json",
    );
    expect(unitValue(agent, "Service", "ExecStart")).toBe(
      "/usr/local/bin/gild agent run --config /etc/gild/agent.json",
    );
  });

  it("map the controller's large allocations on their own, so an agent's idle socket costs what it holds", () => {
    // Node gives every TLS socket a 64 KiB read buffer for as long as it is open: a threshold above
    // that would put 10,000 of them back into glibc's already-touched heap (see the unit's comment).
    // What the harnesses start their controllers with, read from the unit.
    const env = controllerUnitEnvironment();
    const threshold = Number(env.MALLOC_MMAP_THRESHOLD_);
    expect(
      Number.isInteger(threshold) && threshold > 0,
      `MALLOC_MMAP_THRESHOLD_=${env.MALLOC_MMAP_THRESHOLD_}`,
    ).toBe(true);
    expect(threshold).toBeLessThanOrEqual(64 * 1024);
  });

  it("read Environment= as systemd does: words of NAME=value, the later line winning", () => {
    const unit = parseUnit("[Service]\nEnvironment=A=1 B=two\nEnvironment=A=3\n");
    expect(unitEnvironment(unit)).toEqual({ A: "3", B: "two" });
    expect(() => unitEnvironment(parseUnit('[Service]\nEnvironment="A=1 2"\n'))).toThrow(/not an unquoted/);
  });

  it("let the controller run nspawn for image builds, and keep the agent's containers out of its unit", () => {
    const controller = parseUnit(unitText("gild-controller.service"));
    expect(unitValue(controller, "Service", "Delegate")).toBe("yes");
    expect(unitValue(controller, "Service", "ProtectControlGroups")).toBeUndefined();
    expect(unitValue(controller, "Service", "ProtectHostname")).toBeUndefined();
    // nspawn writes /run/systemd/nspawn, made by systemd before the read-only sandbox is set up.
    expect(unitValue(controller, "Service", "RuntimeDirectory")).toBe("systemd/nspawn");
    expect(unitValue(controller, "Service", "RuntimeDirectoryPreserve")).toBe("yes");
    const agent = parseUnit(unitText("gild-agent.service"));
    expect(unitValue(agent, "Service", "ProtectControlGroups")).toBe("yes");
    expect(unitValue(agent, "Service", "Delegate")).toBeUndefined();
  });

  it("name the drop-in the installers write", () => {
    for (const name of units) {
      const role = name.replace(/^gild-|\.service$/g, "");
      const named = [...unitText(name).matchAll(/\.service\.d\/([\w.-]+\.conf)/g)].map((m) => m[1]);
      const installer = readFileSync(join(deploy, `install-${role}`), "utf8");
      const written = /^readonly DROPIN_FILE=.*\.d\/([\w.-]+\.conf)"$/m.exec(installer)?.[1];
      expect(written, `install-${role} writes a drop-in`).toBeDefined();
      expect(named.length, `${name} names it`).toBeGreaterThan(0);
      for (const n of named) expect(n, name).toBe(written);
    }
  });

  it("do not restart an agent the controller refused for good", async () => {
    const { EXIT_REFUSED } = await importFromCli<AgentModule>("@gild/agent");
    const agent = parseUnit(unitText("gild-agent.service"));
    expect(unitValue(agent, "Service", "RestartPreventExitStatus")).toBe(String(EXIT_REFUSED));
  });
});

describeWith(["systemd-analyze"], "systemd units, checked by systemd", () => {
  it("pass systemd-analyze verify", () => {
    // verify also checks that ExecStart's program exists: point it at a stand-in for the CLI, which is
    // not installed on a test machine. Everything else is checked as it is.
    const dir = mkdtempSync(join(tmpdir(), "gild-units-"));
    try {
      const stub = join(dir, "gild");
      writeFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      for (const name of units) {
        const copy = join(dir, name);
        writeFileSync(copy, unitText(name).replaceAll("/usr/local/bin/gild", stub));
        const result = run("systemd-analyze", ["verify", copy]);
        expect({ name, status: result.status, output: result.all.trim() }).toEqual({
          name,
          status: 0,
          output: "",
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("example configs", () => {
  it("hold every setting the controller knows, and the controller's resolver accepts them", async () => {
    const { resolveControllerConfig } = await importFromCli<ControllerModule>("@gild/controller");
    const example = exampleConfig("controller");
    expect(Object.keys(example).sort()).toEqual(knownSettings("packages/controller/src/config.ts").sort());
    const config = resolveControllerConfig(example);
    expect(config.dataDir).toBe("/var/lib/gild/controller");
    expect(config.pool).toBe("/var/lib/gild/pool");
    expect(config.listenPort).toBe(7443);
    expect(config.insecureDev).toBe(false);
    expect(config.publicUrl).toMatch(/^https:\/\//);
  });

  it("hold every setting the agent knows, and the agent's resolver accepts them", async () => {
    const { resolveAgentConfig } = await importFromCli<AgentModule>("@gild/agent");
    const example = exampleConfig("agent");
    expect(Object.keys(example).sort()).toEqual(knownSettings("packages/agent/src/config.ts").sort());
    const config = resolveAgentConfig(example);
    expect(config).toMatchObject({ stateDir: "/var/lib/gild/agent", pool: "/var/lib/gild/pool" });
    // Under the unit, containers must be transient units of their own, or they die with the agent.
    expect(config.runtime).toBe("systemd");
  });

  it("are documented key by key in docs/configuration.md", () => {
    const doc = configurationDoc();
    for (const role of ["controller", "agent"]) {
      for (const key of Object.keys(exampleConfig(role))) {
        expect(doc, `${role} setting ${key}`).toContain(`| \`${key}\``);
      }
    }
  });
});

describe("docs/configuration.md", () => {
  it("documents every flag of the daemons' run commands", () => {
    const doc = configurationDoc();
    const cli = gildCliPath(root);
    for (const command of ["controller", "agent"]) {
      const help = run(process.execPath, [cli, command, "run", "--help"]);
      expect(help.status).toBe(0);
      const flags = [...help.stdout.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1] as string);
      expect(flags.length).toBeGreaterThan(3);
      for (const flag of flags.filter((f) => f !== "--help")) {
        expect(doc, `gild ${command} run ${flag}`).toContain(`\`${flag}`);
      }
    }
  });

  it("documents every environment variable the CLI reads", () => {
    const doc = configurationDoc();
    const source = readFileSync(join(root, "packages/cli/src/cli-env.ts"), "utf8");
    const names = new Set([...source.matchAll(/env\.([A-Z][A-Z_]+)/g)].map((m) => m[1] as string));
    expect(names.size).toBeGreaterThan(3);
    for (const name of names) expect(doc, name).toContain(`\`${name}\``);
  });
});

// What an installer could change on this machine: compared before and after a dry run.
const SYSTEM_PATHS = [
  "/etc/gild",
  "/opt/gild",
  "/usr/local/bin/gild",
  "/usr/local/lib/systemd/system",
  "/etc/systemd/system/gild-controller.service.d",
  "/etc/systemd/system/gild-agent.service.d",
  "/etc/systemd/system/multi-user.target.wants",
  "/var/lib/gild",
  "/var/cache/gild",
  "/etc/apt/sources.list.d",
  "/etc/apt/preferences.d",
  "/etc/apt/keyrings",
  "/run/lock/gild-install.lock",
];

function snapshot(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) {
      out.push(`${path}: absent`);
      continue;
    }
    const info = statSync(path);
    out.push(`${path}: ${info.mode.toString(8)} ${info.mtimeMs}`);
    if (info.isDirectory()) out.push(`${path}/: ${readdirSync(path).sort().join(" ")}`);
  }
  return out;
}

describe("installers", () => {
  it("are executable bash that passes bash -n", () => {
    for (const name of installers) {
      const path = join(deploy, name);
      expect(statSync(path).mode & 0o111, `${name} is executable`).not.toBe(0);
      expect(readFileSync(path, "utf8").split("\n")[0]).toBe("#!/usr/bin/env bash");
      expect(readFileSync(path, "utf8")).toContain("set -euo pipefail");
    }
    for (const file of [...installers, "lib/install-common.sh"]) {
      const result = run("bash", ["-n", join(deploy, file)]);
      expect({ file, status: result.status, stderr: result.stderr }).toEqual({ file, status: 0, stderr: "" });
    }
  });

  it("print their usage for --help, and refuse bad arguments with status 2", () => {
    for (const name of installers) {
      const help = run(join(deploy, name), ["--help"]);
      expect(help.status, name).toBe(0);
      expect(help.stdout, name).toContain("--dry-run");
      expect(help.stdout, name).toContain("--pool");
      expect(help.stdout, name).toContain("--node system");
      const bad = run(join(deploy, name), ["--no-such-flag"]);
      expect(bad.status, name).toBe(2);
      expect(bad.stderr, name).toContain("usage:");
    }
    expect(run(join(deploy, "install-agent"), []).status).toBe(2);
  });

  it("refuse a pool that is not on btrfs, change nothing, and say how to fix it", (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), "gild-not-btrfs-"));
    try {
      if (run("stat", ["-f", "-c", "%T", dir]).stdout.trim() === "btrfs") {
        process.stderr.write(
          `skipping: ${tmpdir()} is on btrfs here, so it cannot stand for a non-btrfs pool\n`,
        );
        ctx.skip();
      }
      const pool = join(dir, "pool");
      const before = snapshot(SYSTEM_PATHS);
      const cases: Array<[string, string[]]> = [
        ["install-controller", ["--pool", pool, "--dry-run", "--yes"]],
        [
          "install-agent",
          ["https://gild.example.com:7443", "gjt_test", "--pool", pool, "--dry-run", "--yes"],
        ],
      ];
      for (const [name, args] of cases) {
        const result = run(join(deploy, name), args);
        expect(result.status, name).toBe(1);
        expect(result.all, name).toContain(`the pool path ${pool} is not on btrfs`);
        expect(result.all, name).toContain("mkfs.btrfs");
        expect(result.all, name).toContain("nothing was changed");
        expect(result.all, name).not.toContain("This will change");
      }
      expect(readdirSync(dir)).toEqual([]);
      expect(snapshot(SYSTEM_PATHS)).toEqual(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWith(["shellcheck"], "installers, checked by shellcheck", () => {
  it("are shellcheck-clean", () => {
    const result = run("shellcheck", ["-x", ...installers.map((n) => join(deploy, n))]);
    expect(result.all).toBe("");
    expect(result.status).toBe(0);
  });
});

describeWith(["root", "setpriv"], "installers, as another user than root", () => {
  it("refuse to run, and say so", () => {
    // The checkout may sit below a directory only root can enter (CI clones into one of mode 0700):
    // the other user runs copies of the installers from a directory of its own.
    const copy = mkdtempSync(join(tmpdir(), "gild-installers-"));
    try {
      cpSync(deploy, join(copy, "deploy"), { recursive: true });
      chmodSync(copy, 0o755);
      const result = run("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        join(copy, "deploy", "install-controller"),
        "--dry-run",
      ]);
      expect(result.status, result.all).toBe(1);
      expect(result.all).toContain("must run as root");
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describeWith(["root", "btrfs"], "installers --dry-run on a btrfs pool", () => {
  let fs: LoopBtrfs | undefined;
  beforeAll(async () => {
    fs = await createLoopBtrfs({ sizeMiB: 256, label: "gild-deploy-test" });
  });
  afterAll(async () => {
    await fs?.destroy();
  });

  /** The JSON config an installer's plan shows it would write, parsed. */
  function plannedConfig(output: string): Record<string, unknown> | undefined {
    const match = /config {8}new: \S+ \([^\n]*\):\n((?: {18}[^\n]*\n)+)/.exec(output);
    return match
      ? (JSON.parse((match[1] as string).replace(/^ {18}/gm, "")) as Record<string, unknown>)
      : undefined;
  }

  it("print the plan, write a valid config in it, and change nothing", async () => {
    const mount = fs!.mountPoint;
    const { resolveControllerConfig } = await importFromCli<ControllerModule>("@gild/controller");
    const { resolveAgentConfig } = await importFromCli<AgentModule>("@gild/agent");
    const before = snapshot(SYSTEM_PATHS);
    const cases: Array<[string, string[], string, string]> = [
      [
        "install-controller",
        ["--pool", join(mount, "images"), "--public-url", "https://gild.example.com:7443", "--dry-run"],
        "/etc/gild/controller.json",
        join(mount, "images"),
      ],
      [
        "install-agent",
        [
          "https://gild.example.com:7443",
          "gjt_0123456789secret",
          "--name",
          "web-1",
          "--label",
          "role=web",
          "--pool",
          join(mount, "pool"),
          "--dry-run",
        ],
        "/etc/gild/agent.json",
        join(mount, "pool"),
      ],
    ];
    for (const [name, args, configFile, pool] of cases) {
      const result = run(join(deploy, name), args);
      expect({ name, status: result.status, stderr: result.stderr }).toMatchObject({ name, status: 0 });
      expect(result.stdout).toContain("This will change");
      expect(result.stdout).toContain("dry run: nothing was changed.");
      expect(result.stdout).toContain(`pool ${pool} will be made on btrfs`);
      expect(result.stdout).toMatch(/unit {10}(new|update|keep): \/usr\/local\/lib\/systemd\/system\/gild-/);
      // The pool is outside /var/lib/gild: the unit gets a drop-in that opens it.
      expect(result.stdout).toContain(`opens ${pool} to the unit`);
      // The token's secret part is never printed.
      expect(result.all).not.toContain("0123456789secret");
      if (existsSync(configFile)) continue;
      const config = plannedConfig(result.stdout);
      expect(config, `${name} shows the config it would write`).toBeDefined();
      if (name === "install-controller") {
        const resolved = resolveControllerConfig(config!);
        expect(resolved.pool).toBe(pool);
        expect(resolved.publicUrl).toBe("https://gild.example.com:7443");
      } else {
        expect(resolveAgentConfig(config!).pool).toBe(pool);
      }
    }
    expect(readdirSync(mount).filter((n) => n !== "lost+found")).toEqual([]);
    expect(snapshot(SYSTEM_PATHS)).toEqual(before);
  });

  const agentArgs = () => [
    "https://gild.example.com:7443",
    "gjt_test",
    "--pool",
    join(fs!.mountPoint, "pool"),
  ];

  it("keep the installed Node.js major on a re-run unless --node-major is given", () => {
    const installed = run("/usr/bin/node", ["--version"]).stdout.trim();
    const major = /^v(\d+)\./.exec(installed)?.[1];
    const before = snapshot(SYSTEM_PATHS);
    const plain = run(join(deploy, "install-agent"), [...agentArgs(), "--dry-run"]);
    expect(plain.status, plain.all).toBe(0);
    if (major === "20" || major === "22") {
      expect(plain.stdout).toContain(
        `Node.js       keep: ${installed} (/usr/bin/node): the installed major is kept; --node-major N changes it`,
      );
      expect(plain.stdout).toMatch(new RegExp(`build release \\S+-node${major} `));
      const other = major === "20" ? "22" : "20";
      const moved = run(join(deploy, "install-agent"), [...agentArgs(), "--node-major", other, "--dry-run"]);
      expect(moved.status, moved.all).toBe(0);
      expect(moved.stdout).toContain(`replaces node ${installed} by Node.js ${other}.x (NodeSource)`);
    } else {
      process.stderr.write(`/usr/bin/node is ${installed || "absent"}: only the default major is checked\n`);
      expect(plain.stdout).toContain("Node.js 22.x (NodeSource)");
    }
    expect(snapshot(SYSTEM_PATHS)).toEqual(before);
  });

  it("use the Node.js on PATH with --node system, and the npm config of that Node.js for pnpm", () => {
    // A Node.js installation of its own (as a tarball would be), whose npm's global config names a
    // registry mirror: the plan must show the pnpm step reading it, which npm given only --prefix would not.
    const prefix = mkdtempSync(join(tmpdir(), "gild-node-"));
    try {
      const npmCli = join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
      mkdirSync(join(prefix, "bin"));
      mkdirSync(join(prefix, "etc"));
      try {
        linkSync(process.execPath, join(prefix, "bin", "node"));
      } catch {
        copyFileSync(process.execPath, join(prefix, "bin", "node"));
        chmodSync(join(prefix, "bin", "node"), 0o755);
      }
      symlinkSync(realpathSync(npmCli), join(prefix, "bin", "npm"));
      writeFileSync(join(prefix, "etc", "npmrc"), "registry=https://npm-mirror.example.invalid/\n");
      const env = { ...process.env, PATH: `${join(prefix, "bin")}:${process.env.PATH ?? ""}` };
      const before = snapshot(SYSTEM_PATHS);
      const result = run(
        join(deploy, "install-agent"),
        [...agentArgs(), "--node", "system", "--dry-run"],
        env,
      );
      expect(result.status, result.all).toBe(0);
      const node = join(prefix, "bin", "node");
      expect(result.stdout).toContain(`ok       Node.js ${process.version} (${node}, --node system)`);
      expect(result.stdout).toContain(`Node.js       keep: ${process.version} (${node}, --node system)`);
      expect(result.stdout).not.toContain("NodeSource's key");
      expect(result.stdout).not.toContain("apt source");
      expect(result.stdout).toContain(
        `from https://npm-mirror.example.invalid/ (npm config: global ${join(prefix, "etc", "npmrc")}, user `,
      );
      expect(result.stdout).toMatch(
        new RegExp(`build release \\S+-node${process.versions.node.split(".")[0]} `),
      );
      expect(snapshot(SYSTEM_PATHS)).toEqual(before);
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  });

  it("refuse --node system with a Node.js that is too old, or with --node-major", () => {
    const bin = mkdtempSync(join(tmpdir(), "gild-old-node-"));
    try {
      writeFileSync(join(bin, "node"), "#!/bin/sh\necho v18.19.0\n", { mode: 0o755 });
      const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
      const before = snapshot(SYSTEM_PATHS);
      const old = run(join(deploy, "install-agent"), [...agentArgs(), "--node", "system", "--dry-run"], env);
      expect(old.status, old.all).toBe(1);
      expect(old.all).toContain(
        `--node system: ${join(bin, "node")} is Node.js v18.19.0; gild needs 20.11 or newer`,
      );
      expect(old.all).toContain("nothing was changed");
      const both = run(join(deploy, "install-agent"), [
        ...agentArgs(),
        "--node",
        "system",
        "--node-major",
        "22",
        "--dry-run",
      ]);
      expect(both.status, both.all).toBe(1);
      expect(both.all).toContain("--node-major chooses NodeSource's package");
      expect(snapshot(SYSTEM_PATHS)).toEqual(before);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
