import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { buildBusyboxRoot } from "../busybox-image.js";
import { environmentWithoutGild } from "../fleet/fleet-context.js";
import {
  appInstances,
  createFleet,
  destroyFleetAt,
  FLEET_STATE_FILE,
  type Fleet,
  fetchPage,
  gildCliPath,
  imageUpdateArgs,
} from "../fleet/index.js";
import { waitFor } from "../wait.js";
import {
  HELLO_CODE_MOUNT,
  HELLO_DATA_MOUNT,
  HELLO_PORT,
  QUICK_HELLO_COMMAND,
  writeHelloCode,
  writeQuickHelloCode,
} from "./php-app.js";

export interface QuickstartOptions {
  /** Where the fleet lives (its state file, logs, pools). */
  dir: string;
  /** Keep downloaded Debian packages here between runs (debootstrap --cache-dir). */
  cacheDir: string;
  /** The busybox image instead of debootstrap: seconds instead of minutes, no PHP. */
  quick: boolean;
  /** Where progress goes; the live rollout view goes to the terminal directly. */
  log: (line: string) => void;
}

export interface QuickstartResult {
  fleet: Fleet;
  urls: string[];
  /** Each host's page after the rollout. */
  pages: string[];
}

const step = (log: (line: string) => void, text: string) => log(`\n==> ${text}`);

/**
 * Run the CLI against the fleet with the terminal attached (live views, build output); throws on
 * failure. A developer's GILD_* variables (another controller, its token) are not passed on.
 */
function gildLive(fleet: Fleet, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [gildCliPath(), ...args], {
      stdio: "inherit",
      env: { ...environmentWithoutGild(), ...fleet.env },
    });
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`gild ${args.join(" ")} failed (${signal ?? `exit ${code}`})`)),
    );
  });
}

/**
 * The quickstart's whole flow, on the fleet harness the end-to-end tests use: a controller and three
 * hosts (network namespaces, loopback btrfs pools, real agents joined with one-time tokens); the golden
 * image php@1 (debootstrap: Debian bookworm with nginx and php-fpm) and the app `hello` whose code is
 * the code line hello@1, shipped by gild and mounted read-only; then php@2 from `gild image update php
 * -- apt-get install ...` and hello@2 (a one-line change), each rolled out canary first with the live
 * view.
 */
export async function runQuickstart(options: QuickstartOptions): Promise<QuickstartResult> {
  const { log } = options;
  if (existsSync(join(options.dir, FLEET_STATE_FILE))) {
    step(log, `removing the previous quickstart in ${options.dir}`);
    await destroyFleetAt(options.dir);
  }
  mkdirSync(options.dir, { recursive: true });
  step(
    log,
    "making a local fleet: a controller and 3 hosts (network namespaces, btrfs pools on loop devices)",
  );
  const fleet = await createFleet({
    hosts: 3,
    dir: options.dir,
    persist: true,
    hostLabels: () => ({ role: "web" }),
    log: (line) => log(`    ${line}`),
  });
  try {
    if (options.quick) {
      step(log, "building php@1 from busybox (--quick: no Debian, no PHP)");
      const tree = join(options.dir, "quick-rootfs");
      await buildBusyboxRoot(tree, { marker: "hello from gild, image php@1" });
      await gildLive(fleet, ["image", "create", "php", "--from-dir", tree]);
    } else {
      step(log, "building php@1 with debootstrap: Debian bookworm + nginx + php-fpm (about 1.5 minutes)");
      mkdirSync(options.cacheDir, { recursive: true });
      await gildLive(fleet, [
        "image",
        "create",
        "php",
        "--debootstrap",
        "bookworm",
        "--include",
        "nginx,php-fpm",
        "--cache-dir",
        options.cacheDir,
      ]);
    }

    step(log, "hello@1: the app's code as a code line (gild code create hello --from-dir ...)");
    const source = join(options.dir, "hello-src");
    const writeCode = options.quick ? writeQuickHelloCode : writeHelloCode;
    await writeCode(source, "release 1");
    await gildLive(fleet, ["code", "create", "hello", "--from-dir", source]);
    step(log, "the app hello: its code from hello, its runtime from php, its data on each host");
    const command = options.quick ? QUICK_HELLO_COMMAND : `exec /bin/sh ${HELLO_CODE_MOUNT}/start.sh`;
    const health = options.quick
      ? `http://127.0.0.1:${HELLO_PORT}/healthz`
      : `http://127.0.0.1:${HELLO_PORT}/healthz.php`;
    await gildLive(fleet, [
      "app",
      "create",
      "hello",
      "--image",
      "php",
      "--code",
      "hello",
      "--code-mount",
      HELLO_CODE_MOUNT,
      "--hosts",
      "role=web",
      "--port",
      String(HELLO_PORT),
      "--cmd",
      command,
      "--data",
      HELLO_DATA_MOUNT,
      "--health",
      health,
      "--health-interval",
      "500ms",
      "--min-healthy",
      "2s",
    ]);
    step(log, "deploying hello (php@1, hello@1) to every host");
    await gildLive(fleet, ["app", "deploy", "hello"]);
    const urls = fleet.hosts.map((h) => h.url(HELLO_PORT, "/"));
    for (const [i, url] of urls.entries()) {
      const text = await fetchPage(url);
      log(`    ${fleet.hosts[i]?.name}: ${url}\n${text.trim().replace(/^/gm, "      | ")}`);
    }

    if (options.quick) {
      step(log, "php@2: gild image update php -- (a change to the served page)");
      await gildLive(fleet, imageUpdateArgs("php", "sed -i 's/php@1/php@2/g' /www/index.html"));
    } else {
      step(log, "php@2: gild image update php -- apt-get install php-mbstring (a real package change)");
      await gildLive(
        fleet,
        imageUpdateArgs(
          "php",
          "apt-get update -qq && apt-get install -y -qq --no-install-recommends php-mbstring && apt-get clean",
        ),
      );
    }
    // The plan shows exactly the rollout that starts next.
    const strategy = [
      "--canary",
      "1",
      "--waves",
      "100%",
      "--promote",
      "auto",
      "--canary-bake",
      "5s",
      "--min-healthy",
      "3s",
    ];
    await gildLive(fleet, ["rollout", "plan", "php@2", ...strategy]);
    step(log, "rolling php@2 out: canary first, then the rest, with health gates (live view)");
    await gildLive(fleet, ["rollout", "start", "php@2", ...strategy, "--watch"]);

    step(log, "hello@2: a one-line change to the app's code (gild code update: a delta of that file)");
    await writeCode(source, "release 2");
    await gildLive(fleet, ["code", "update", "hello", "--from-dir", source]);
    step(log, "rolling hello@2 out the same way: canary first, health gates (live view)");
    await gildLive(fleet, ["rollout", "start", "hello@2", ...strategy, "--watch"]);

    step(log, "the fleet now");
    // The last inventories arrive right after the switches: wait until every host reports both healthy.
    await waitFor(
      async () => {
        const instances = await appInstances(fleet, "hello");
        return (
          instances.length === 3 &&
          instances.every((i) => i.imageVersion === 2 && i.codeVersion === 2 && i.health === "healthy")
        );
      },
      { what: "every host healthy on php@2 with hello@2", timeoutMs: 60_000 },
    );
    await gildLive(fleet, ["hosts"]);
    await gildLive(fleet, ["app", "ls"]);
    const pages: string[] = [];
    for (const [i, url] of urls.entries()) {
      const text = await fetchPage(url);
      pages.push(text);
      log(`    ${fleet.hosts[i]?.name}: ${url}\n${text.trim().replace(/^/gm, "      | ")}`);
    }
    log(
      [
        "",
        "gild is running: a controller and 3 hosts on this machine.",
        `  export GILD_CONTROLLER_DIR=${fleet.controllerDataDir}`,
        `  alias gild='node ${gildCliPath()}'`,
        "  gild hosts; gild app ls; gild rollout ls; gild image ls --hosts; gild code ls",
        `  curl ${urls[0]}`,
        "Remove everything it made: deploy/quickstart down",
      ].join("\n"),
    );
    return { fleet, urls, pages };
  } catch (err) {
    log(`\nthe quickstart stopped: ${(err as Error).message}`);
    log(`logs: ${join(options.dir, "logs")}; remove everything with: deploy/quickstart down`);
    throw err;
  }
}

/**
 * `deploy/quickstart down`: everything the quickstart made, from its state file, and the processes of
 * the fleet that no record names (a controller or agent started again by hand); safe to run twice.
 * When something could not be removed, the error says what holds it and how to fix it.
 */
export async function quickstartDown(dir: string, log: (line: string) => void): Promise<void> {
  if (existsSync(join(dir, FLEET_STATE_FILE))) {
    log(`removing the quickstart fleet in ${dir}`);
    await destroyFleetAt(dir, { log, again: `deploy/quickstart down --dir ${resolve(dir)}` });
  } else {
    log(`no quickstart fleet in ${dir}`);
  }
  await rm(dir, { recursive: true, force: true });
}
