import { spawnFailure } from "@gild/core";
import { describe, expect, it } from "vitest";

describe("spawnFailure", () => {
  const enoent = Object.assign(new Error("spawn x ENOENT"), { code: "ENOENT" });

  it("turns a missing program into GILD_TOOL_MISSING with the package to install", () => {
    const err = spawnFailure("systemd-nspawn", enoent);
    expect(err?.code).toBe("GILD_TOOL_MISSING");
    expect(err?.hint).toBe("apt-get install systemd-container");
    expect(spawnFailure("btrfs", enoent)?.hint).toBe("apt-get install btrfs-progs");
    expect(spawnFailure("frobnicate", enoent)?.hint).toBe("install frobnicate");
  });

  it("leaves every other failure to the caller", () => {
    expect(spawnFailure("btrfs", Object.assign(new Error("denied"), { code: "EACCES" }))).toBeUndefined();
    expect(spawnFailure("btrfs", null)).toBeUndefined();
  });
});
