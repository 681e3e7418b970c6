import type { ImageStore } from "@gild/btrfs";
import type { AppInstance, Inventory } from "@gild/protocol";

/** Supplies the apps part of the inventory (the runtime, once apps run on this host). */
export type AppsReporter = () => Promise<AppInstance[]>;

/** Read what the host really has from its pool (and running apps): sent on connect and on change. */
export async function readInventory(
  store: ImageStore,
  apps: AppsReporter,
  facts: () => Record<string, string> = () => ({}),
): Promise<Inventory> {
  const [images, space, appList] = await Promise.all([store.list(), store.pool.space(), apps()]);
  return {
    images: images.map((i) => ({
      line: i.line,
      version: i.version,
      uuid: i.uuid,
      receivedUuid: i.receivedUuid ?? "",
    })),
    poolFreeBytes: space.freeBytes,
    poolTotalBytes: space.totalBytes,
    apps: appList,
    reportedAtMs: Date.now(),
    facts: facts(),
  };
}

/**
 * A fingerprint of an inventory without what moves by itself (its timestamp, the jittery free space,
 * how long health streaks have lasted), to send only changes.
 */
export function inventoryFingerprint(inventory: Inventory): string {
  const freeMiB64 = Math.round(inventory.poolFreeBytes / (64 * 1024 * 1024));
  const apps = inventory.apps.map((a) => ({ ...a, healthyForMs: 0 }));
  return JSON.stringify({ ...inventory, apps, reportedAtMs: 0, poolFreeBytes: freeMiB64 });
}
