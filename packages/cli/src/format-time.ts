import { formatDuration } from "@gild/core";

/** `12s ago`, `3m ago`, or `-` for never. */
export function ago(at: number | null | undefined, now = Date.now()): string {
  if (!at) return "-";
  const ms = Math.max(0, now - at);
  return ms < 1000 ? "just now" : `${formatDuration(Math.floor(ms / 1000) * 1000)} ago`;
}

/** Local date and time, to the second. */
export function when(at: number | null | undefined): string {
  if (!at) return "-";
  const d = new Date(at);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
