import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  BootedSystemd,
  type BridgedNetns,
  bridgedNetns,
  type ConnectProxy,
  createFleet,
  createLoopBtrfs,
  type Fleet,
  findRepoRoot,
  type HostUpdateStatusView,
  type LoopBtrfs,
  run,
  startConnectProxy,
  waitFor,
  watchHostUpdate,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// Issue 13's host update "once for real": a Debian 12 container booted with systemd as PID 1, the agent
// installed in it by deploy/install-agent (from this checkout, with this machine's Node.js: --node
// system) and running under gild-agent.service, joined to a controller outside. A host update with
// `--reboot always` makes the agent run `systemctl reboot`; nspawn exits 133 and BootedSystemd boots the
// same root again (as systemd-nspawn@.service would); systemd starts the agent, which answers the reboot.
//
// The container's only network is a veth on the fleet's bridge: it reaches the controller, and the npm
// registry (the installer's pnpm step) through a CONNECT proxy on the bridge address. The apt packages
// the installer wants are installed by debootstrap, so its apt step has nothing to do.

const HOST = "booted-1";
/** Where this machine's Node.js (binary, npm, headers) is seen inside: PATH's first entry. */
const NODE_PREFIX = "/opt/host-node";
const PATH_INSIDE = `${NODE_PREFIX}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
/** deploy/install-agent's APT_PACKAGES. */
const INSTALLER_PACKAGES = [
  "btrfs-progs",
  "iproute2",
  "util-linux",
  "ca-certificates",
  "curl",
  "gpg",
  "build-essential",
  "python3",
];
const FAST = [
  "--min-healthy",
  "1s",
  "--bake",
  "0s",
  "--deadline",
  "5m",
  "--timeout",
  "60s",
  "--on-failure",
  "fail",
];

describeWith(
  ["root", "btrfs", "nspawn", "netns", "debootstrap"],
  "a host update that reboots a booted Debian 12 with the agent installed by deploy/install-agent",
  () => {
    let scratch: string | undefined;
    let fleet: Fleet | undefined;
    let pool: LoopBtrfs | undefined;
    let netns: BridgedNetns | undefined;
    let proxy: ConnectProxy | undefined;
    let booted: BootedSystemd | undefined;
    const repo = findRepoRoot();

    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), "gild-booted-update-"));
      fleet = await createFleet({ hosts: 0 });
      pool = await createLoopBtrfs({ sizeMiB: 1024, label: "gild-booted" });
      netns = await bridgedNetns(fleet, 200);
      proxy = await startConnectProxy(fleet.bridgeAddress);
      const nodeBin = await realpath(process.execPath);
      const prefix = dirname(dirname(nodeBin));
      const nodeBinds = [
        { host: nodeBin, inside: `${NODE_PREFIX}/bin/node`, readOnly: true },
        { host: join(prefix, "lib/node_modules/npm"), inside: `${NODE_PREFIX}/lib/node_modules/npm` },
        { host: join(prefix, "include/node"), inside: `${NODE_PREFIX}/include/node` },
      ]
        .filter((b) => existsSync(b.host))
        .map((b) => ({ ...b, readOnly: true }));
      const proxyUrl = proxy.url;
      // No package cache unless the machine offers one (as the quickstart test): it must work from empty.
      const cacheDir = process.env.GILD_QUICKSTART_CACHE ?? join(scratch, "debs");
      booted = await BootedSystemd.boot({
        dir: scratch,
        cacheDir,
        bindReadOnly: [repo],
        bind: [...nodeBinds, { host: pool.mountPoint, inside: "/var/lib/gild/pool" }],
        extraPackages: INSTALLER_PACKAGES,
        networkNamespacePath: netns.path,
        rebootable: true,
        prepare: async (root) => {
          await mkdir(join(root, NODE_PREFIX, "bin"), { recursive: true });
          await symlink("../lib/node_modules/npm/bin/npm-cli.js", join(root, NODE_PREFIX, "bin/npm"));
          // This machine's own CAs (a TLS-inspecting egress proxy's), trusted inside as an operator
          // would: into the system bundle, which root's npm config names (docs/deployment.md).
          const localCas = "/usr/local/share/ca-certificates";
          if (existsSync(localCas)) {
            await cp(localCas, join(root, localCas), { recursive: true });
            await run("chroot", [root, "update-ca-certificates"]);
          }
          // root's npm config: the installer's pnpm step and pnpm itself reach the registry through it.
          await writeFile(
            join(root, "root/.npmrc"),
            `https-proxy=${proxyUrl}\nproxy=${proxyUrl}\ncafile=/etc/ssl/certs/ca-certificates.crt\n`,
          );
        },
      });
      const { debootstrapMs, bootMs } = booted.timings;
      process.stdout.write(`booted systemd: debootstrap ${debootstrapMs} ms, boot ${bootMs} ms\n`);
    }, 15 * 60_000);

    afterAll(async () => {
      await booted?.destroy();
      await proxy?.close();
      netns?.destroy();
      await pool?.destroy();
      await fleet?.destroy();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }, 120_000);

    const inside = async (argv: string[], timeoutMs = 60_000) => {
      if (!booted) throw new Error("the container did not boot");
      return booted.run(argv, timeoutMs);
    };
    const insideText = async (argv: string[]) => {
      const out = await inside(argv);
      if (out.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${out.exitCode}: ${out.stderr}`);
      return out.stdout.trim();
    };

    it(
      "installs and joins the agent, reboots the container for `--reboot always`, and the agent comes back under systemd",
      async () => {
        if (!fleet || !booted) throw new Error("set-up failed");
        const f = fleet;
        const { token } = await f.gildJson<{ token: string }>(["token", "create"]);
        const t0 = Date.now();
        const install = await inside(
          [
            "env",
            "HOME=/root",
            `PATH=${PATH_INSIDE}`,
            `${repo}/deploy/install-agent`,
            f.controllerUrl,
            token,
            "--name",
            HOST,
            "--node",
            "system",
            "--yes",
          ],
          20 * 60_000,
        );
        process.stdout.write(`install-agent took ${Math.round((Date.now() - t0) / 1000)} s\n`);
        expect(install.exitCode, `${install.stdout.slice(-4000)}\n${install.stderr.slice(-4000)}`).toBe(0);
        expect(await insideText(["systemctl", "is-active", "gild-agent"])).toBe("active");
        await waitFor(
          async () => {
            const hosts = await f.gildJson<Array<{ name: string; state: string }>>(["hosts"]);
            return hosts.find((h) => h.name === HOST)?.state === "online";
          },
          { timeoutMs: 60_000, intervalMs: 500, what: `${HOST} online` },
        );
        const bootId = await insideText(["cat", "/proc/sys/kernel/random/boot_id"]);
        // A fresh pid namespace may hand out the same pid again: the unit's invocation id is unique.
        const invocation = await insideText(["systemctl", "show", "-P", "InvocationID", "gild-agent"]);

        const started = await f.gildJson<HostUpdateStatusView>([
          "host-update",
          "start",
          "--hosts",
          HOST,
          "--command",
          "touch /var/tmp/gild-updated",
          "--reboot",
          "always",
          "--canary",
          "1",
          ...FAST,
        ]);
        const done = await watchHostUpdate(f, started.id, 10 * 60_000);
        expect(booted.rebootError).toBeUndefined();
        expect(done.code, `${done.stderr}\n${JSON.stringify(done.view, null, 2)}`).toBe(0);
        expect(done.view.state).toBe("succeeded");
        const host = done.view.waves[0]?.hosts[0];
        expect(host?.state).toBe("done");
        expect(host?.rebootedAt).not.toBeNull();

        // A real reboot: nspawn exited 133 and booted again, systemd started the agent at boot.
        expect(booted.bootCount).toBe(2);
        await booted.waitUntilRunning(120_000);
        expect(await insideText(["systemctl", "is-active", "gild-agent"])).toBe("active");
        expect(await insideText(["systemctl", "is-enabled", "gild-agent"])).toBe("enabled");
        expect(await insideText(["cat", "/proc/sys/kernel/random/boot_id"])).not.toBe(bootId);
        expect(await insideText(["systemctl", "show", "-P", "InvocationID", "gild-agent"])).not.toBe(
          invocation,
        );
        // The command changed the host itself, not a sandbox of the agent's: the file outlived the reboot.
        expect((await inside(["test", "-e", "/var/tmp/gild-updated"])).exitCode).toBe(0);
        const hosts = await f.gildJson<Array<{ name: string; state: string }>>(["hosts"]);
        expect(hosts.find((h) => h.name === HOST)?.state).toBe("online");
      },
      30 * 60_000,
    );
  },
);
