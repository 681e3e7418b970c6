// Apart from metrics.ts so the agent's config (and the CLI that checks it) loads without prom-client.

/** Where the agent serves its metrics: off unless configured; a bare port binds 127.0.0.1. */
export interface MetricsListen {
  host: string;
  port: number;
}

/** Parse `port`, `host:port` or `[v6]:port`; undefined when it is none of them. */
export function parseMetricsListen(text: string): MetricsListen | undefined {
  const bare = /^(\d{1,5})$/.exec(text);
  const full = /^(.+):(\d{1,5})$/.exec(text);
  const port = Number(bare?.[1] ?? full?.[2] ?? Number.NaN);
  if (!Number.isInteger(port) || port > 65_535) return undefined;
  const host = bare ? "127.0.0.1" : (full?.[1] ?? "").replace(/^\[(.*)\]$/, "$1");
  return host === "" ? undefined : { host, port };
}
