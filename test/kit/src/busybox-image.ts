import { constants, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** How the test app behaves (for health gates and stop timeouts). */
export type BusyboxBehaviour = "ok" | "exit-at-start" | "unhealthy" | "ignore-sigterm";

export interface BusyboxRootOptions {
  /** Shown on /index.html, e.g. "gild-test v2", so a test can tell which version serves. */
  marker?: string;
  /** Default "ok". */
  behaviour?: BusyboxBehaviour;
  /** The static busybox to copy in; default /bin/busybox (Debian's busybox-static). */
  busybox?: string;
}

/** Where the entrypoint lives inside the root. */
export const BUSYBOX_SERVE_PATH = "/usr/local/bin/serve";

/** The file in the app's data dir that the entrypoint appends one line to per start. */
export const BUSYBOX_STARTS_LOG = "starts.log";

/** The exit code and message of the "exit-at-start" behaviour, for assertions. */
export const EXIT_AT_START_CODE = 3;
export const EXIT_AT_START_MESSAGE = "gild-test: refusing to start (behaviour exit-at-start)";

const APPLETS = [
  "sh",
  "ash",
  "httpd",
  "sleep",
  "cat",
  "echo",
  "kill",
  "wc",
  "date",
  "mkdir",
  "test",
  "[",
  "true",
  "false",
  "ls",
  "ps",
  "env",
  "printf",
  "grep",
  "rm",
  "touch",
  "id",
  "hostname",
  "wget",
  "nc",
  "head",
  "tail",
  "sed",
];

// Directories nspawn would otherwise create on first start: made here so a fresh root and a used one
// look the same.
const DIRS = [
  "bin",
  "sbin",
  "usr/bin",
  "usr/sbin",
  "usr/local/bin",
  "etc",
  "www",
  "tmp",
  "var",
  "root",
  "proc",
  "sys",
  "dev",
  "run",
];

/**
 * The entrypoint: busybox httpd as a child of the shell (PID 1 in the container, which the kernel
 * shields from signals it has no handler for), with a trap so SIGTERM ends both cleanly, exit 0.
 * Deterministic text: no timestamps, only the behaviour changes it.
 */
function serveScript(behaviour: BusyboxBehaviour): string {
  const lines = [
    "#!/bin/sh",
    `# gild test app (behaviour: ${behaviour}). Usage: serve PORT [DATA_DIR]`,
    'port="$1"',
    'data="$2"',
    'if [ -z "$port" ]; then echo "usage: serve PORT [DATA_DIR]" >&2; exit 2; fi',
    // One line per start, so tests can prove app data survives switches (and that nothing restarted).
    `if [ -n "$data" ]; then mkdir -p "$data" && echo "start pid=$$ $(date +%s)" >> "$data/${BUSYBOX_STARTS_LOG}"; fi`,
  ];
  if (behaviour === "exit-at-start") {
    lines.push(`echo "${EXIT_AT_START_MESSAGE}" >&2`, `exit ${EXIT_AT_START_CODE}`);
    return `${lines.join("\n")}\n`;
  }
  if (behaviour === "ignore-sigterm") {
    // '' makes the signal ignored, here and (inherited) in httpd: only SIGKILL ends this container.
    lines.push("trap '' TERM");
  } else {
    lines.push(
      `trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; echo "serve: stopped on SIGTERM"; exit 0' TERM INT`,
    );
  }
  lines.push(
    'echo "serve: listening on port $port"',
    '/bin/httpd -f -p "$port" -h /www &',
    "child=$!",
    // wait returns early when a trapped signal arrives; the trap then exits. Otherwise httpd ended.
    'wait "$child"',
    "status=$?",
    'echo "serve: httpd ended with status $status" >&2',
    "exit $status",
  );
  return `${lines.join("\n")}\n`;
}

async function writeText(path: string, text: string, mode = 0o644): Promise<void> {
  await writeFile(path, text);
  await chmod(path, mode);
}

/**
 * Write a tiny OS tree nspawn accepts (it wants /usr and /etc/os-release) into `dir`: a static busybox,
 * applet links, root in /etc/passwd, a web root with the marker, and the `serve` entrypoint. Takes well
 * under a second; may be called again on the same dir to change marker or behaviour.
 */
export async function buildBusyboxRoot(dir: string, options: BusyboxRootOptions = {}): Promise<string> {
  const behaviour = options.behaviour ?? "ok";
  const marker = options.marker ?? "gild-test v1";
  for (const sub of DIRS) await mkdir(join(dir, sub), { recursive: true });
  await chmod(join(dir, "tmp"), 0o1777);
  // A copy, never a link: the container's root is writable, the host's busybox must stay untouched.
  // A reflink where the filesystem can (btrfs), a plain copy elsewhere.
  await copyFile(options.busybox ?? "/bin/busybox", join(dir, "bin/busybox"), constants.COPYFILE_FICLONE);
  await chmod(join(dir, "bin/busybox"), 0o755);
  for (const applet of APPLETS) {
    const link = join(dir, "bin", applet);
    await rm(link, { force: true });
    await symlink("busybox", link);
  }
  await writeText(
    join(dir, "etc/os-release"),
    'ID=gild-test\nNAME="gild test (busybox)"\nPRETTY_NAME="gild test (busybox)"\n',
  );
  await writeText(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  await writeText(join(dir, "etc/group"), "root:x:0:\n");
  await writeText(
    join(dir, "www/index.html"),
    `<!doctype html>\n<title>${marker}</title>\n<p>${marker}</p>\n`,
  );
  // "unhealthy" serves the page but has no /healthz, so busybox httpd answers 404 and a probe fails.
  const healthz = join(dir, "www/healthz");
  if (behaviour === "unhealthy") await rm(healthz, { force: true });
  else await writeText(healthz, "ok\n");
  await writeText(join(dir, BUSYBOX_SERVE_PATH.slice(1)), serveScript(behaviour), 0o755);
  return dir;
}

/** The command that runs the test app: serve on `port`, logging starts to `dataDir` when given. */
export function busyboxServeCommand(port: number, dataDir?: string): string[] {
  return dataDir === undefined
    ? [BUSYBOX_SERVE_PATH, String(port)]
    : [BUSYBOX_SERVE_PATH, String(port), dataDir];
}

/** The same command as one line for `gild app create --cmd` (run by /bin/sh, which execs it). */
export function busyboxServeShellCommand(port: number, dataDir?: string): string {
  return `exec ${busyboxServeCommand(port, dataDir).join(" ")}`;
}

/**
 * The start lines the test app wrote on a fleet host, oldest first: `<pool>/data/<app>/starts.log`
 * (the agent keeps each app's data dir there).
 */
export function readStartsLog(poolPath: string, app: string): string[] {
  return readFileSync(join(poolPath, "data", app, BUSYBOX_STARTS_LOG), "utf8")
    .trim()
    .split("\n");
}
