// How the pages show numbers and times: the same units the CLI prints.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 -> "1.5 KiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${UNITS[unit]}`;
}

/** A span in ms as "1h 2m", "3m 4s" or "5s". */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** "12s ago", or "never". */
export function ago(at: number | null | undefined, now: number): string {
  return at ? `${span(now - at)} ago` : "never";
}

/** "in 12s" (or "overdue by 3s") until an absolute time. */
export function countdown(at: number, now: number): string {
  return at >= now ? `in ${span(at - now)}` : `overdue by ${span(now - at)}`;
}

/** An absolute time in the viewer's locale, for tooltips and the audit. */
export function clock(at: number | null | undefined): string {
  return at ? new Date(at).toLocaleString() : "–";
}
