import type { AppInstance, Inventory } from "@gild/protocol";
import type { AgentHub } from "./agent-hub.js";
import type { HostInventory } from "./store/hosts-repo.js";
import type { Store } from "./store/store.js";

// A healthy streak reported again moves by the link's delay and the agent's rounding: within this much
// it is the same streak, and keeps the start it was first given. Only for reports that do not name
// their streak (an inventory stored before agentHealthSinceMs was kept, or a start the agent lacks).
const SAME_STREAK_MS = 2_000;

/**
 * When an app's healthy streak began, on the controller's own clock: the agent reports how long it has
 * held (healthy_for_ms, measured on its monotonic clock), so the start is `receivedAt` minus that. Two
 * machines' wall clocks are never compared: an agent 10 minutes off cannot shorten or stretch
 * minHealthy. Agents without the field (older ones) report only their own wall-clock start.
 *
 * A streak reported again keeps the start it was first given. The agent names its streak by the start
 * it gives it on its own clock (healthSinceMs): another start is another streak, however close in time
 * (an agent restarted for a reboot starts its app again within a second). That compares two reports of
 * one agent, never two machines.
 */
function healthStart(
  app: AppInstance,
  receivedAt: number,
  before: HostInventory["apps"][number] | undefined,
): number {
  if (app.health !== "healthy") return 0;
  if (app.healthyForMs <= 0) return app.healthSinceMs;
  const start = receivedAt - app.healthyForMs;
  if (before === undefined || before.health !== "healthy" || before.generation !== app.generation)
    return start;
  const named = app.healthSinceMs > 0 && (before.agentHealthSinceMs ?? 0) > 0;
  const same = named
    ? before.agentHealthSinceMs === app.healthSinceMs
    : Math.abs(before.healthSinceMs - start) <= SAME_STREAK_MS;
  return same ? before.healthSinceMs : start;
}

/** What the store keeps of a health detail (older agents did not clip a rollback's log tail). */
const STORED_DETAIL_CHARS = 8192;

function clipDetail(detail: string): string {
  return detail.length <= STORED_DETAIL_CHARS ? detail : `${detail.slice(0, STORED_DETAIL_CHARS - 3)}...`;
}

/**
 * An agent's Inventory as the store keeps it: health streaks on the controller's clock (received at
 * `receivedAt`; `previous` is the host's last stored inventory).
 */
export function normalizeInventory(
  inventory: Inventory,
  receivedAt: number,
  previous: HostInventory | null = null,
): HostInventory {
  return {
    ...inventory,
    apps: inventory.apps.map((app) => {
      // The duration is turned into healthSinceMs; the store keeps starts, not durations.
      const { healthyForMs: _duration, ...stored } = app;
      const before = previous?.apps.find((p) => p.name === app.name);
      return {
        ...stored,
        healthDetail: clipDetail(stored.healthDetail),
        healthSinceMs: healthStart(app, receivedAt, before),
        agentHealthSinceMs: app.healthSinceMs,
      };
    }),
  };
}

// Free space moves with every write; only a change of more than this much is worth a store write.
const SPACE_SLACK_BYTES = 64 * 1024 * 1024;

/**
 * What of a stored inventory is compared with the next report, by the stored object (the hosts
 * repository replaces it on every change): the report that changes nothing, the most common one, is
 * then taken apart once, not twice.
 */
const comparedForm = new WeakMap<HostInventory, string>();

function material(inventory: HostInventory): string {
  let form = comparedForm.get(inventory);
  if (form === undefined) {
    form = JSON.stringify({ ...inventory, reportedAtMs: 0, poolFreeBytes: 0 });
    comparedForm.set(inventory, form);
  }
  return form;
}

function materiallyEqual(stored: HostInventory, next: HostInventory): boolean {
  return (
    Math.abs(stored.poolFreeBytes - next.poolFreeBytes) < SPACE_SLACK_BYTES &&
    material(stored) === material(next)
  );
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
