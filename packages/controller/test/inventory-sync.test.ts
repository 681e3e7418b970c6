import type { AppInstance, Inventory } from "@gild/protocol";
import { describe, expect, it } from "vitest";
import { normalizeInventory } from "../src/inventory-sync.js";
import type { HostInventory } from "../src/store/hosts-repo.js";

// When an app's healthy streak began, on the controller's clock, as reports come in (inventory-sync.ts).

const T0 = 1_800_000_000_000;

function app(patch: Partial<AppInstance>): AppInstance {
  return {
    name: "site",
    generation: 1,
    imageLine: "web",
    imageVersion: 1,
    state: "running",
    health: "healthy",
    healthDetail: "HTTP 200",
    healthSinceMs: 0,
    healthyForMs: 0,
    previousGeneration: 0,
    previousImageVersion: 0,
    generations: [1],
    specHash: "s",
    codeLine: "",
    codeVersion: 0,
    previousCodeVersion: 0,
    ...patch,
  };
}

function inventory(a: AppInstance): Inventory {
  return { images: [], poolFreeBytes: 0, poolTotalBytes: 0, apps: [a], reportedAtMs: 0, facts: {} };
}

/** The stored start of the streak after `report` arrived at `at`, with `before` stored. */
const startAfter = (report: Partial<AppInstance>, at: number, before: HostInventory | null = null) =>
  normalizeInventory(inventory(app(report)), at, before).apps[0]?.healthSinceMs;

describe("normalizeInventory", () => {
  // The agent's own clock is 10 minutes ahead: its starts name streaks, they are never times here.
  const agentClock = T0 + 600_000;
  const first = normalizeInventory(inventory(app({ healthSinceMs: agentClock, healthyForMs: 3_000 })), T0);

  it("puts a streak's start on the controller's clock, from how long it has held", () => {
    expect(first.apps[0]?.healthSinceMs).toBe(T0 - 3_000);
  });

  it("keeps a streak's first start when the agent reports the same streak again, the link's delay apart", () => {
    expect(startAfter({ healthSinceMs: agentClock, healthyForMs: 61_500 }, T0 + 60_000, first)).toBe(
      T0 - 3_000,
    );
  });

  it("starts a new streak when the agent names another, however close (an agent restarted for a reboot)", () => {
    // Healthy again 1,850 ms after the old streak began: within the old 2 s slack, yet a new streak.
    expect(startAfter({ healthSinceMs: agentClock + 1_850, healthyForMs: 50 }, T0 - 1_100, first)).toBe(
      T0 - 1_150,
    );
  });

  it("starts a new streak for a new generation, and none while unhealthy", () => {
    expect(
      startAfter({ generation: 2, healthSinceMs: agentClock, healthyForMs: 10 }, T0 + 5_000, first),
    ).toBe(T0 + 4_990);
    expect(startAfter({ health: "unhealthy", healthSinceMs: agentClock }, T0 + 5_000, first)).toBe(0);
  });

  it("falls back to the 2 s slack for a stored streak the agent never named (stored before it was kept)", () => {
    const unnamed: HostInventory = {
      ...first,
      apps: first.apps.map(({ agentHealthSinceMs: _, ...a }) => a),
    };
    expect(startAfter({ healthSinceMs: agentClock + 900, healthyForMs: 4_000 }, T0 + 2_500, unnamed)).toBe(
      T0 - 3_000,
    );
    expect(startAfter({ healthSinceMs: agentClock + 900, healthyForMs: 4_000 }, T0 + 5_000, unnamed)).toBe(
      T0 + 1_000,
    );
  });
});
