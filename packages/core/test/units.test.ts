import {
  assertRoot,
  formatBytes,
  formatDuration,
  parseDuration,
  parseImageRef,
  parseImageSelector,
  parseSize,
} from "@gild/core";
import { describe, expect, it } from "vitest";

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["10s", 10_000],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["2", 2_000],
    ["1.5s", 1_500],
  ])("parses %s", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "5x", "m5", "1h 5m", "-1s"])("refuses %j with a coded error", (text) => {
    expect(() => parseDuration(text)).toThrow(expect.objectContaining({ code: "GILD_BAD_REQUEST" }));
  });

  it("formats", () => {
    expect(formatDuration(90_000)).toBe("1m30s");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(3_600_000)).toBe("1h");
  });
});

describe("sizes", () => {
  it.each([
    ["4096", 4096],
    ["512KiB", 512 * 1024],
    ["20M", 20 * 1024 ** 2],
    ["1.5GB", 1.5e9],
    ["50MiB/s", 50 * 1024 ** 2],
  ])("parses %s", (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it("refuses nonsense", () => {
    expect(() => parseSize("lots")).toThrow(expect.objectContaining({ code: "GILD_BAD_REQUEST" }));
  });

  it("formats", () => {
    expect(formatBytes(17)).toBe("17 B");
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.00 GiB");
  });
});

describe("image references", () => {
  it("parses line@version", () => {
    expect(parseImageRef("php@3")).toEqual({ line: "php", version: 3 });
    expect(parseImageSelector("php")).toEqual({ line: "php", version: undefined });
  });

  it.each(["php", "@3", "php@0", "php@x", "PHP@1", "php@01", "a/b@1"])("refuses %j", (text) => {
    expect(() => parseImageRef(text)).toThrow(expect.objectContaining({ code: "GILD_IMAGE_NAME_INVALID" }));
  });
});

describe("daemons that need root", () => {
  it("are refused with GILD_NOT_ROOT and a hint unless they run as root", () => {
    expect(() => assertRoot("gild agent run", 0)).not.toThrow();
    expect(() => assertRoot("gild agent run", 1000)).toThrow(
      expect.objectContaining({ code: "GILD_NOT_ROOT", message: expect.stringContaining("gild agent run") }),
    );
  });
});
