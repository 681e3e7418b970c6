import type { Inventory } from "@gild/protocol";
import type { AgentHub } from "./agent-hub.js";
import type { HostInventory } from "./store/hosts-repo.js";
import type { Store } from "./store/store.js";

// A healthy streak reported again moves by the link's delay and the agent's rounding: within this much
// it is the same streak, and keeps the start it was first given.
const SAME_STREAK_MS = 2_000;

/**
 * When an app's healthy streak began, on the controller's own clock: the agent reports how long it has
 * held (healthy_for_ms, measured on its monotonic clock), so the start is `receivedAt` minus that. Two
 * machines' wall clocks are never compared: an agent 10 minutes off cannot shorten or stretch
 * minHealthy. Agents without the field (older ones) report only their own wall-clock start.
 */
function healthStart(
  app: NonNullable<Inventory["apps"]>[number],
  receivedAt: number,
  before: HostInventory["apps"][number] | undefined,
): number {
  if (app.health !== "healthy") return 0;
  const forMs = Number(app.healthyForMs ?? 0);
  if (forMs <= 0) return app.healthSinceMs ?? 0;
  const start = receivedAt - forMs;
  const same =
    before !== undefined &&
    before.health === "healthy" &&
    before.generation === (app.generation ?? 0) &&
    Math.abs(before.healthSinceMs - start) <= SAME_STREAK_MS;
  return same ? before.healthSinceMs : start;
}

/**
 * The wire Inventory as the store keeps it: plain JSON, defaults filled in, health streaks on the
 * controller's clock (received at `receivedAt`; `previous` is the host's last stored inventory).
 */
export function normalizeInventory(
  inventory: Inventory,
  receivedAt: number,
  previous: HostInventory | null = null,
): HostInventory {
  return {
    images: (inventory.images ?? []).map((i) => ({
      line: i.line ?? "",
      version: i.version ?? 0,
      uuid: i.uuid ?? "",
      receivedUuid: i.receivedUuid ?? "",
      parentUuid: i.parentUuid ?? "",
      sizeBytes: i.sizeBytes ?? 0,
    })),
    poolFreeBytes: inventory.poolFreeBytes ?? 0,
    poolTotalBytes: inventory.poolTotalBytes ?? 0,
    apps: (inventory.apps ?? []).map((a) => ({
      name: a.name ?? "",
      generation: a.generation ?? 0,
      imageLine: a.imageLine ?? "",
      imageVersion: a.imageVersion ?? 0,
      state: a.state ?? "",
      health: a.health ?? "unknown",
      healthDetail: a.healthDetail ?? "",
      healthSinceMs: healthStart(
        a,
        receivedAt,
        previous?.apps.find((p) => p.name === (a.name ?? "")),
      ),
      previousGeneration: a.previousGeneration ?? 0,
      previousImageVersion: a.previousImageVersion ?? 0,
      generations: [...(a.generations ?? [])],
      specHash: a.specHash ?? "",
    })),
    reportedAtMs: inventory.reportedAtMs ?? 0,
  };
}

// Free space moves with every write; only a change of more than this much is worth a store write.
const SPACE_SLACK_BYTES = 64 * 1024 * 1024;

function materiallyEqual(a: HostInventory, b: HostInventory): boolean {
  const strip = (i: HostInventory) => JSON.stringify({ ...i, reportedAtMs: 0, poolFreeBytes: 0 });
  return strip(a) === strip(b) && Math.abs(a.poolFreeBytes - b.poolFreeBytes) < SPACE_SLACK_BYTES;
}

/** Keep each host's last inventory in the store, written only when it changed. */
export function syncInventories(
  hub: AgentHub,
  store: Store,
  onChange: (hostId: string, inventory: HostInventory) => void,
): void {
  hub.addListener({
    onInventory(hostId, inventory) {
      const current = store.hosts.byId(hostId)?.inventory ?? null;
      const next = normalizeInventory(inventory, Date.now(), current);
      if (current && materiallyEqual(current, next)) return;
      store.hosts.setInventory(hostId, next);
      onChange(hostId, next);
    },
  });
}
