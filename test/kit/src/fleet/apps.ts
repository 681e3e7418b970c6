import { busyboxServeShellCommand } from "../busybox-image.js";
import type { Fleet } from "./types.js";

/** An app instance as `gild app ls --json` shows it (the fields tests read; the rest passes through). */
export interface AppInstanceView {
  host: string;
  generation: number;
  imageVersion: number;
  state: string;
  health: string;
  previousGeneration: number;
  [field: string]: unknown;
}

/** The instances of `app` from `gild app ls --json`; [] when there is no such app. */
export async function appInstances(fleet: Fleet, app: string): Promise<AppInstanceView[]> {
  const apps = await fleet.gildJson<Array<{ spec: { name: string }; instances: AppInstanceView[] }>>([
    "app",
    "ls",
  ]);
  return apps.find((a) => a.spec.name === app)?.instances ?? [];
}

/** The text an app serves at `url`; rejects when no answer comes within timeoutMs. */
export async function fetchPage(url: string, timeoutMs = 5_000): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return res.text();
}

export interface BusyboxAppOptions {
  /** The app's name; default "site". */
  app?: string;
  /** Its image line; default "web". */
  image?: string;
  /** --hosts: names (comma-separated) or a label selector. */
  hosts: string;
  /** The port busybox's httpd serves on (health at http://127.0.0.1:<port>/healthz). */
  port: number;
  /** Also publish the port (--port). */
  publish?: boolean;
  /** --min-healthy; default 500ms. */
  minHealthy?: string;
  /** --health-interval; default 200ms. */
  healthInterval?: string;
  healthyDeadline?: string;
  stopTimeout?: string;
}

/**
 * The arguments of `gild app create` for the busybox test image's web server: it serves
 * /srv/data (the app's data dir), is healthy at /healthz, and gates on `minHealthy`.
 */
export function busyboxAppArgs(options: BusyboxAppOptions): string[] {
  const { port } = options;
  return [
    "app",
    "create",
    options.app ?? "site",
    "--image",
    options.image ?? "web",
    "--hosts",
    options.hosts,
    ...(options.publish ? ["--port", String(port)] : []),
    "--cmd",
    busyboxServeShellCommand(port, "/srv/data"),
    "--data",
    "/srv/data",
    "--health",
    `http://127.0.0.1:${port}/healthz`,
    "--health-interval",
    options.healthInterval ?? "200ms",
    "--min-healthy",
    options.minHealthy ?? "500ms",
    ...(options.healthyDeadline ? ["--healthy-deadline", options.healthyDeadline] : []),
    ...(options.stopTimeout ? ["--stop-timeout", options.stopTimeout] : []),
  ];
}

/** Define the busybox web app (see busyboxAppArgs). */
export async function createBusyboxApp(fleet: Fleet, options: BusyboxAppOptions): Promise<void> {
  await fleet.gildJson(busyboxAppArgs(options));
}

/** `gild app deploy <app> --image <ref>`; throws with the CLI's stderr when it does not succeed. */
export async function deployApp(
  fleet: Fleet,
  app: string,
  image: string,
  timeoutMs = 120_000,
): Promise<void> {
  const deployed = await fleet.gild(["app", "deploy", app, "--image", image], { timeoutMs });
  if (deployed.code !== 0) {
    throw new Error(`gild app deploy ${app} --image ${image} exited ${deployed.code}: ${deployed.stderr}`);
  }
}
