import { createHash } from "node:crypto";

// One hostname label: systemd accepts machine names up to 64 characters, DNS labels up to 63.
const MAX_LENGTH = 63;

/**
 * The nspawn machine name (and container hostname) of one app generation: readable, and unique per
 * `scope` (the driver's run directory), because agents of a simulated fleet share one kernel and nspawn
 * keys its per-machine state in /run by this name. Deterministic, so adopt() can recognise it.
 */
export function machineName(app: string, generation: number, scope: string): string {
  const hash = createHash("sha256").update(`${scope}\0${app}\0${generation}`).digest("hex").slice(0, 8);
  const suffix = `-${generation}-${hash}`;
  const room = MAX_LENGTH - "gild-".length - suffix.length;
  return `gild-${app.slice(0, Math.max(room, 1))}${suffix}`;
}
