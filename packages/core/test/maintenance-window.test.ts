import {
  formatMaintenanceWindow,
  isGildError,
  isWindowOpen,
  nextWindowOpen,
  parseMaintenanceWindows,
  windowOpenUntil,
} from "@gild/core";
import { describe, expect, it } from "vitest";

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

// 2026-12-05 is a Saturday.
describe("maintenance windows", () => {
  it.each([
    // spec, now, open, next open, open until
    [
      "Sat 02:00-05:00 UTC",
      "2026-12-05T03:00:00Z",
      true,
      "2026-12-05T03:00:00.000Z",
      "2026-12-05T05:00:00.000Z",
    ],
    ["Sat 02:00-05:00 UTC", "2026-12-05T05:00:00Z", false, "2026-12-12T02:00:00.000Z", null],
    ["Sat 02:00-05:00 UTC", "2026-12-05T01:59:00Z", false, "2026-12-05T02:00:00.000Z", null],
    ["Sat 02:00-05:00 UTC", "2026-12-04T12:00:00Z", false, "2026-12-05T02:00:00.000Z", null],
    // crossing midnight: Friday's window runs into Saturday morning; nothing starts on Saturday
    [
      "Mon-Fri 22:00-06:00 UTC",
      "2026-12-05T05:59:00Z",
      true,
      "2026-12-05T05:59:00.000Z",
      "2026-12-05T06:00:00.000Z",
    ],
    ["Mon-Fri 22:00-06:00 UTC", "2026-12-05T22:30:00Z", false, "2026-12-07T22:00:00.000Z", null],
    [
      "Mon-Fri 22:00-06:00 UTC",
      "2026-12-07T23:00:00Z",
      true,
      "2026-12-07T23:00:00.000Z",
      "2026-12-08T06:00:00.000Z",
    ],
    // Sunday-to-Monday: the week's wrap
    [
      "Sun 23:00-01:00 UTC",
      "2026-12-07T00:30:00Z",
      true,
      "2026-12-07T00:30:00.000Z",
      "2026-12-07T01:00:00.000Z",
    ],
    ["daily 01:00-03:00 UTC", "2026-12-05T04:00:00Z", false, "2026-12-06T01:00:00.000Z", null],
    // several: the earliest next opening; touching windows join
    [
      "Sat 02:00-05:00 UTC, daily 01:00-03:00 UTC",
      "2026-12-05T01:30:00Z",
      true,
      "2026-12-05T01:30:00.000Z",
      "2026-12-05T05:00:00.000Z",
    ],
    [
      "Wed 10:00-11:00 UTC, Mon 10:00-11:00 UTC",
      "2026-12-05T00:00:00Z",
      false,
      "2026-12-07T10:00:00.000Z",
      null,
    ],
    // fixed offsets: 02:00 at +02:00 is 00:00 UTC
    [
      "Sat 02:00-05:00 +02:00",
      "2026-12-05T00:30:00Z",
      true,
      "2026-12-05T00:30:00.000Z",
      "2026-12-05T03:00:00.000Z",
    ],
    ["Sat 02:00-05:00 UTC-01:30", "2026-12-05T03:00:00Z", false, "2026-12-05T03:30:00.000Z", null],
    ["daily 00:00-24:00 UTC", "2026-12-05T12:00:00Z", true, "2026-12-05T12:00:00.000Z", null],
  ])("%s at %s: open %s, next %s, until %s", (spec, now, open, next, until) => {
    const windows = parseMaintenanceWindows(spec);
    const t = at(now);
    expect(isWindowOpen(windows, t)).toBe(open);
    expect(iso(nextWindowOpen(windows, t))).toBe(next);
    // an always-open stretch joins every span the search covers; only its being later than now matters
    if (until === null && open) expect(windowOpenUntil(windows, t)).toBeGreaterThan(t + 7 * 86_400_000);
    else expect(iso(windowOpenUntil(windows, t))).toBe(until);
  });

  it("no windows: always open, no end", () => {
    expect(isWindowOpen([], 0)).toBe(true);
    expect(nextWindowOpen([], 5)).toBe(5);
    expect(windowOpenUntil([], 5)).toBeNull();
  });

  it.each([
    ["Sat 02:00-05:00 UTC", "Sat 02:00-05:00 UTC"],
    ["mon-fri 22:00-06:00 utc", "Mon-Fri 22:00-06:00 UTC"],
    ["daily 1:00-3:00 +02:00", "daily 01:00-03:00 +02:00"],
    ["Fri-Mon 10:00-11:00 Z", "Fri-Mon 10:00-11:00 UTC"],
  ])("%s reads back as %s", (spec, text) => {
    expect(parseMaintenanceWindows(spec).map(formatMaintenanceWindow).join(", ")).toBe(text);
  });

  it.each([
    ["", "window", "is empty"],
    ["Sat 02:00-05:00", "window", "is not '<days> HH:MM-HH:MM <zone>'"],
    ["Sat 02:00-05:00 Europe/Berlin", "window.zone", "guesses no time zone"],
    ["Sat 02:00-05:00 CET", "window.zone", "is not UTC"],
    ["Caturday 02:00-05:00 UTC", "window.days", "is not daily"],
    ["Sat 25:00-05:00 UTC", "window.start", "is not a time of day"],
    ["Sat 02:00-05:61 UTC", "window.end", "is not a time of day"],
    ["Sat 02:00-02:00 UTC", "window", "same time"],
    ["Sat 02:00-05:00 UTC, Sun 02:00 UTC", "window[1]", "is not"],
  ])("%j is refused at %s", (spec, path, problem) => {
    try {
      parseMaintenanceWindows(spec);
      expect.unreachable("parsed");
    } catch (err) {
      expect(isGildError(err, "GILD_INVALID_SPEC")).toBe(true);
      const problems = (err as { details: { problems: { path: string; message: string }[] } }).details
        .problems;
      expect(problems.some((p) => p.path === path && p.message.includes(problem))).toBe(true);
    }
  });
});
