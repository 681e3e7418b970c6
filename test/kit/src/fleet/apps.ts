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
