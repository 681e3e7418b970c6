import type { Inventory } from "@gild/protocol";
import type { AgentHub } from "./agent-hub.js";
import type { HostInventory } from "./store/hosts-repo.js";
import type { Store } from "./store/store.js";

/** The wire Inventory as the store keeps it: plain JSON, defaults filled in. */
export function normalizeInventory(inventory: Inventory): HostInventory {
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
      healthSinceMs: a.healthSinceMs ?? 0,
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
      const next = normalizeInventory(inventory);
      const current = store.hosts.byId(hostId)?.inventory;
      if (current && materiallyEqual(current, next)) return;
      store.hosts.setInventory(hostId, next);
      onChange(hostId, next);
    },
  });
}
