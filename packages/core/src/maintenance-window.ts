import type { FieldProblem } from "./config-fields.js";
import { GildError } from "./errors.js";

/**
 * Maintenance windows (issue 13): weekly stretches of time in which rollouts and host updates may start
 * work on a host. docs/architecture.md, Maintenance windows. Times are UTC or a fixed offset (+02:00):
 * gild guesses no time zone and knows no daylight saving, so a window is the same instant every week.
 */

/** One parsed window: the days it starts on, its start and end as minutes of the day, its offset. */
export interface MaintenanceWindow {
  /** Days the window starts on, 0 = Sunday ... 6 = Saturday. */
  days: number[];
  /** Minutes after midnight, local to the offset. */
  startMinute: number;
  /** Minutes after midnight; at or before startMinute means the window ends the next day. */
  endMinute: number;
  /** The offset from UTC in minutes (+02:00 is 120). */
  offsetMinutes: number;
}

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MINUTE_MS = 60_000;
const DAY_MINUTES = 1440;
const WEEK_MS = 7 * DAY_MINUTES * MINUTE_MS;
/** 1970-01-01 was a Thursday: the epoch is 4 days after a Sunday midnight. */
const EPOCH_WEEK_OFFSET_MS = 4 * DAY_MINUTES * MINUTE_MS;

const ENTRY = /^(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s+(\S+)$/;

/**
 * Parse a window spec: comma-separated entries `<days> HH:MM-HH:MM <zone>`, days `daily`, `Sat` or a
 * range `Mon-Fri` (wrapping: `Fri-Mon`), zone `UTC` or a fixed offset `+02:00`/`UTC+02:00`. An end at or
 * before the start crosses midnight. Every problem is reported at once in one GILD_INVALID_SPEC.
 */
export function parseMaintenanceWindows(spec: string): MaintenanceWindow[] {
  const problems: FieldProblem[] = [];
  const windows: MaintenanceWindow[] = [];
  const entries = spec.split(",").map((e) => e.trim());
  if (spec.trim() === "") problems.push({ path: "window", message: "is empty" });
  else
    entries.forEach((entry, i) => {
      const path = entries.length > 1 ? `window[${i}]` : "window";
      const parsed = parseEntry(entry, path, problems);
      if (parsed !== null) windows.push(parsed);
    });
  if (problems.length > 0) {
    throw new GildError(
      "GILD_INVALID_SPEC",
      `invalid maintenance window "${spec}": ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      {
        details: { problems },
        hint: "write '<daily|Sat|Mon-Fri> HH:MM-HH:MM UTC' (or a fixed offset like +02:00), comma-separated",
      },
    );
  }
  return windows;
}

function parseEntry(entry: string, path: string, problems: FieldProblem[]): MaintenanceWindow | null {
  const m = ENTRY.exec(entry);
  if (m === null) {
    problems.push({ path, message: `"${entry}" is not '<days> HH:MM-HH:MM <zone>'` });
    return null;
  }
  const before = problems.length;
  const days = parseDays(m[1] as string, path, problems);
  const startMinute = minuteOfDay(m[2] as string, m[3] as string, `${path}.start`, problems, false);
  const endMinute = minuteOfDay(m[4] as string, m[5] as string, `${path}.end`, problems, true);
  const offsetMinutes = parseZone(m[6] as string, path, problems);
  if (
    startMinute !== null &&
    endMinute !== null &&
    startMinute === endMinute % DAY_MINUTES &&
    endMinute !== DAY_MINUTES
  )
    problems.push({ path, message: "starts and ends at the same time (use 00:00-24:00 for a whole day)" });
  if (problems.length > before || days === null || startMinute === null || endMinute === null) return null;
  if (offsetMinutes === null) return null;
  return { days, startMinute, endMinute, offsetMinutes };
}

function parseDays(text: string, path: string, problems: FieldProblem[]): number[] | null {
  const lower = text.toLowerCase();
  if (lower === "daily") return [0, 1, 2, 3, 4, 5, 6];
  const [from, to, ...rest] = lower.split("-");
  const a = DAY_NAMES.indexOf(from ?? "");
  const b = to === undefined ? a : DAY_NAMES.indexOf(to);
  if (rest.length > 0 || a < 0 || b < 0) {
    problems.push({
      path: `${path}.days`,
      message: `"${text}" is not daily, a day (Mon) or a range (Mon-Fri)`,
    });
    return null;
  }
  const days: number[] = [];
  for (let d = a; ; d = (d + 1) % 7) {
    days.push(d);
    if (d === b) break;
  }
  return days;
}

function minuteOfDay(
  hh: string,
  mm: string,
  path: string,
  problems: FieldProblem[],
  allow24: boolean,
): number | null {
  const h = Number(hh);
  const m = Number(mm);
  const minute = h * 60 + m;
  if (m > 59 || h > 24 || (h === 24 && (m !== 0 || !allow24))) {
    problems.push({ path, message: `${hh}:${mm} is not a time of day${allow24 ? " (00:00-24:00)" : ""}` });
    return null;
  }
  return minute;
}

function parseZone(text: string, path: string, problems: FieldProblem[]): number | null {
  const upper = text.toUpperCase();
  if (upper === "UTC" || upper === "Z") return 0;
  const m = /^(?:UTC)?([+-])(\d{2}):(\d{2})$/.exec(upper);
  if (m !== null) {
    const minutes = Number(m[2]) * 60 + Number(m[3]);
    if (Number(m[3]) < 60 && minutes <= 14 * 60) return (m[1] === "-" ? -1 : 1) * minutes;
  }
  problems.push({
    path: `${path}.zone`,
    message: `"${text}" is not UTC or a fixed offset like +02:00 (gild guesses no time zone names)`,
  });
  return null;
}

/** The windows' spans around `now`, as absolute [start, end) ms, from the week before to two after. */
function spansAround(windows: readonly MaintenanceWindow[], now: number): [number, number][] {
  const weekStart = now - ((((now + EPOCH_WEEK_OFFSET_MS) % WEEK_MS) + WEEK_MS) % WEEK_MS);
  const spans: [number, number][] = [];
  for (const w of windows) {
    const length =
      (w.endMinute > w.startMinute
        ? w.endMinute - w.startMinute
        : w.endMinute + DAY_MINUTES - w.startMinute) * MINUTE_MS;
    for (const day of w.days) {
      const start = weekStart + (day * DAY_MINUTES + w.startMinute - w.offsetMinutes) * MINUTE_MS;
      for (let k = -1; k <= 2; k++) spans.push([start + k * WEEK_MS, start + k * WEEK_MS + length]);
    }
  }
  return spans.sort((x, y) => x[0] - y[0]);
}

/** Is a host with these windows open at `now`? No windows at all means always open. */
export function isWindowOpen(windows: readonly MaintenanceWindow[], now: number): boolean {
  if (windows.length === 0) return true;
  return spansAround(windows, now).some(([s, e]) => s <= now && now < e);
}

/** When the windows are next open, `now` itself when open now (ms since the epoch). */
export function nextWindowOpen(windows: readonly MaintenanceWindow[], now: number): number {
  if (isWindowOpen(windows, now)) return now;
  const next = spansAround(windows, now).find(([s]) => s > now);
  // spansAround covers two weeks ahead and every window repeats weekly, so one always starts.
  if (next === undefined) throw new Error("nextWindowOpen: no window start in two weeks");
  return next[0];
}

/**
 * When the open stretch around `now` ends (overlapping or touching windows joined); null when closed
 * now, or when there are no windows (always open: no end).
 */
export function windowOpenUntil(windows: readonly MaintenanceWindow[], now: number): number | null {
  if (windows.length === 0 || !isWindowOpen(windows, now)) return null;
  let end = now;
  for (const [s, e] of spansAround(windows, now)) if (s <= end && e > end) end = e;
  return end;
}

/** A window spec in its canonical text, for listings: days, times and zone as parsed. */
export function formatMaintenanceWindow(w: MaintenanceWindow): string {
  const name = (d: number): string => {
    const n = DAY_NAMES[d] as string;
    return n.charAt(0).toUpperCase() + n.slice(1);
  };
  const days =
    w.days.length === 7
      ? "daily"
      : w.days.length === 1
        ? name(w.days[0] as number)
        : `${name(w.days[0] as number)}-${name(w.days.at(-1) as number)}`;
  const hm = (m: number): string =>
    `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  const off = Math.abs(w.offsetMinutes);
  const zone = w.offsetMinutes === 0 ? "UTC" : `${w.offsetMinutes < 0 ? "-" : "+"}${hm(off)}`;
  return `${days} ${hm(w.startMinute)}-${hm(w.endMinute)} ${zone}`;
}

/**
 * When a host with these windows may next be started, or null when it may start now (open, or no
 * windows). Planners treat such a host as waiting, never as failing.
 */
export function windowWaitUntil(
  windows: readonly MaintenanceWindow[] | undefined,
  now: number,
): number | null {
  if (windows === undefined || isWindowOpen(windows, now)) return null;
  return nextWindowOpen(windows, now);
}

/** The reason a host waiting for its window carries, for events, statuses and the e2e test. */
export function windowWaitReason(opensAt: number): string {
  return `waiting for its maintenance window (opens ${new Date(opensAt).toISOString()})`;
}
