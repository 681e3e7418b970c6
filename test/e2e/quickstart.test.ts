import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FLEET_STATE_FILE,
  fleetLeftovers,
  fleetNspawnFiles,
  gildCliPath,
  readFleetState,
  runQuickstartScript,
} from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

function gildJson<T>(controllerDir: string, args: string[]): T {
  const out = execFileSync(process.execPath, [gildCliPath(), ...args, "--json"], {
    env: { ...process.env, GILD_CONTROLLER_DIR: controllerDir },
    encoding: "utf8",
  });
  return JSON.parse(out) as T;
}

describeWith(
  ["root", "btrfs", "nspawn", "netns", "busybox", "debootstrap"],
  "the quickstart (debootstrap PHP image)",
  () => {
    let scratch: string;
    let dir: string;

    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), "gild-quickstart-"));
      dir = join(scratch, "fleet");
    });

    afterAll(async () => {
      if (dir && existsSync(join(dir, FLEET_STATE_FILE)))
        await runQuickstartScript(["down", "--dir", dir], 120_000);
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    it(
      "builds php@1, deploys hello, rolls php@2 out canary first, and `down` leaves nothing behind",
      async () => {
        // No package cache unless the machine offers one: the flow must work from an empty cache.
        const cacheDir = process.env.GILD_QUICKSTART_CACHE ?? join(scratch, "debs");
        const started = Date.now();
        const up = await runQuickstartScript(["--dir", dir, "--cache-dir", cacheDir], 15 * 60_000);
        const seconds = Math.round((Date.now() - started) / 1000);
        process.stdout.write(`quickstart (debootstrap) took ${seconds} s\n`);
        expect(up.code, up.output.slice(-6000)).toBe(0);
        // php@1 served first (no mbstring), php@2 after the rollout (mbstring installed by the update).
        expect(up.output).toMatch(/image:\s+php@1[\s\S]*mbstring:\s+no/);
        expect(up.output).toMatch(/image:\s+php@2[\s\S]*mbstring:\s+yes/);
        // The code came through gild (hello@1, then hello@2 rolled out), never written into a pool by hand.
        expect(up.output).toMatch(/code:\s+hello@1 \(release 1\)/);
        expect(up.output).toMatch(/code:\s+hello@2 \(release 2\)/);
        expect(up.output).toContain("SUCCEEDED");
        // The app's data survived the switch: each host's counter went on from where it was.
        const visits = [...up.output.matchAll(/visits:\s+(\d+)/g)].map((m) => Number(m[1]));
        expect(visits).toEqual([1, 1, 1, 2, 2, 2]);

        const state = readFleetState(dir);
        if (!state) throw new Error(`no fleet state in ${dir}`);
        const controllerDir = state.controllerDataDir;
        const hosts = gildJson<Array<{ state: string }>>(controllerDir, ["hosts"]);
        expect(hosts.map((h) => h.state)).toEqual(["online", "online", "online"]);
        const apps = gildJson<
          Array<{ instances: Array<{ imageVersion: number; codeVersion: number; health: string }> }>
        >(controllerDir, ["app", "ls"]);
        expect(apps[0]?.instances.map((i) => [i.imageVersion, i.codeVersion, i.health])).toEqual([
          [2, 2, "healthy"],
          [2, 2, "healthy"],
          [2, 2, "healthy"],
        ]);

        // The containers still run: what their nspawns made under /run goes with them.
        const containerFiles = fleetNspawnFiles(state);
        expect(containerFiles.length).toBeGreaterThanOrEqual(6);
        const down = await runQuickstartScript(["down", "--dir", dir], 120_000);
        expect(down.code, down.output).toBe(0);
        const again = await runQuickstartScript(["down", "--dir", dir], 120_000);
        expect(again.code, again.output).toBe(0);

        // Nothing of it remains: namespaces, links, mounts, loop devices, processes, files.
        expect(await fleetLeftovers(state)).toEqual([]);
        expect(containerFiles.filter((file) => existsSync(file))).toEqual([]);
      },
      20 * 60_000,
    );
  },
);
