import { GildError } from "./errors.js";

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Longer than any duration setting may be (each has its own, smaller bound: DURATION_LIMITS). */
export const MAX_DURATION_MS = 365 * 86_400_000;

/** Parse `500ms`, `10s`, `5m`, `1h`, `1h30m` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string, what = "duration"): number {
  const trimmed = text.trim();
  if (/^[0-9]+(\.[0-9]+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = re.exec(trimmed); match !== null; match = re.exec(trimmed)) {
    total += Number(match[1]) * (DURATION_UNITS[match[2] as string] as number);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== trimmed.length) {
    throw new GildError("GILD_BAD_REQUEST", `invalid ${what} "${text}"`, {
      hint: "write durations like 500ms, 10s, 5m, 1h or 1h30m",
    });
  }
  // No gild duration is longer than a year; what is beyond it is a typo or an attack (8.64e27 ms).
  if (!(total <= MAX_DURATION_MS)) {
    throw new GildError("GILD_BAD_REQUEST", `${what} "${text}" is longer than any gild accepts (365d)`, {
      hint: "each setting's own bound is in docs/configuration.md and docs/cli.md",
    });
  }
  return Math.round(total);
}

/** Format milliseconds the way parseDuration reads them: `1h5m`, `90s` -> `1m30s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let seconds = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
  ] as const) {
    if (seconds >= size) {
      parts.push(`${Math.floor(seconds / size)}${unit}`);
      seconds %= size;
    }
  }
  if (seconds > 0 || parts.length === 0) parts.push(`${seconds}s`);
  return parts.join("");
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** Parse `512MiB`, `20M`, `1.5GB`, `4096` into bytes. A trailing `/s` is accepted for rates. */
export function parseSize(text: string, what = "size"): number {
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)(?:\/s)?\s*$/.exec(text);
  const factor = match ? SIZE_UNITS[(match[2] as string).toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new GildError("GILD_BAD_REQUEST", `invalid ${what} "${text}"`, {
      hint: "write sizes like 4096, 512KiB, 20MiB, 1.5GB (binary K/M/G are KiB/MiB/GiB)",
    });
  }
  return Math.round(Number(match[1]) * factor);
}

/** Human bytes: `1.5 GiB`, `512 KiB`, `17 B`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[unit]}`;
}
