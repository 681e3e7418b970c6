import type { ControllerClient } from "@gild/api-client";
import { mapLimit } from "../fleet/parallel.js";
import type { JoinedHost } from "./fake-fleet.js";

/** What joining many hosts took: each host's identity, and the latency of each API call. */
export interface JoinedHosts {
  joined: JoinedHost[];
  ms: number;
  tokenMs: number[];
  enrollMs: number[];
}

/**
 * Join hosts the way `gild agent join` does, straight through the API: a one-time token
 * (POST /v1/tokens, admin) and its enrollment (POST /v1/enroll), `concurrency` hosts at a time.
 */
export async function joinHostsByApi(
  api: ControllerClient,
  names: readonly string[],
  options: { concurrency: number; labels: Record<string, string>; onJoined?: (count: number) => void },
): Promise<JoinedHosts> {
  const tokenMs: number[] = [];
  const enrollMs: number[] = [];
  const t0 = Date.now();
  let count = 0;
  const joined = await mapLimit(names, options.concurrency, async (name): Promise<JoinedHost> => {
    const t1 = performance.now();
    const { token } = await api.call("POST /v1/tokens", { body: {} });
    const t2 = performance.now();
    const result = await api.call("POST /v1/enroll", { body: { token, name, labels: options.labels } });
    tokenMs.push(t2 - t1);
    enrollMs.push(performance.now() - t2);
    options.onJoined?.(++count);
    return { name, hostId: result.hostId, credential: result.credential };
  });
  return { joined, ms: Date.now() - t0, tokenMs, enrollMs };
}
