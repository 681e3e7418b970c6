import { formatDuration } from "@gild/core";

/** How long since `at`, to the second (`0s` within the first second). */
export function since(at: number, now = Date.now()): string {
  return formatDuration(Math.floor(Math.max(0, now - at) / 1000) * 1000);
}

/** `12s ago`, `3m ago`, or `-` for never. */
export function ago(at: number | null | undefined, now = Date.now()): string {
  if (!at) return "-";
  return now - at < 1000 ? "just now" : `${since(at, now)} ago`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Local time of day, to the second. */
export function clock(at: number): string {
  const d = new Date(at);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local date and time, to the second. */
export function when(at: number | null | undefined): string {
  if (!at) return "-";
  const d = new Date(at);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(at)}`;
}
