import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { CHROMIUM } from "./requirements.js";

/** A headless Chromium this process started: its pid, its DevTools endpoint, and how to end it. */
export interface HeadlessChromium {
  pid: number;
  /** ws://127.0.0.1:<port>/devtools/browser/<id>: what playwright-core's connectOverCDP takes. */
  wsEndpoint: string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start Debian's Chromium headless with a fresh profile, home and temporary dir in `dir` (no sandbox:
 * tests run as root, which Chromium's sandbox refuses), listening for DevTools on a free loopback port. The test owns the
 * process by its pid, so it can end it in afterAll whatever happened to the connection.
 */
export async function launchHeadlessChromium(dir: string, timeoutMs = 30_000): Promise<HeadlessChromium> {
  const profile = join(dir, "chromium-profile");
  mkdirSync(profile, { recursive: true });
  // Besides its profile Chromium writes to its temporary dir (its singleton socket's dir), to the
  // config dir (crash reports) and to the cache (dconf): all of them under `dir`, not the machine's.
  const home = join(dir, "chromium-home");
  const env = {
    ...process.env,
    HOME: home,
    TMPDIR: join(home, "tmp"),
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_CACHE_HOME: join(home, ".cache"),
  };
  mkdirSync(env.TMPDIR, { recursive: true });
  const child = spawn(
    CHROMIUM,
    [
      "--headless=new",
      "--no-sandbox",
      `--user-data-dir=${profile}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--window-size=1400,1000",
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "pipe"], env },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const wsEndpoint = await new Promise<string>((resolve, reject) => {
      let stderr = "";
      const timer = setTimeout(
        () =>
          reject(
            new Error(`Chromium printed no DevTools endpoint within ${timeoutMs} ms: ${stderr.slice(-2000)}`),
          ),
        timeoutMs,
      );
      child.stderr.on("data", (chunk: Buffer) => {
        // Keep the tail only: Chromium goes on logging there for as long as it runs.
        stderr = (stderr + chunk.toString()).slice(-8192);
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1] as string);
        }
      });
      child.once("error", reject);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`Chromium exited (${code ?? signal}) before it listened: ${stderr.slice(-2000)}`));
      });
    });
    return { pid: child.pid as number, wsEndpoint, close };
  } catch (err) {
    await close();
    throw err;
  }
}
