import { createRollout, type FleetObservation, type RolloutRecord, resolveStrategy } from "@gild/core";
import { describe, expect, it } from "vitest";
import type { AgentHub } from "../src/agent-hub.js";
import { ObservationCache, observeRollout, rolloutCommandId } from "../src/rollout-observer.js";
import type { CommandRecord } from "../src/store/commands-repo.js";
import type { HostInventory, HostRecord } from "../src/store/hosts-repo.js";
import { blogHost } from "./support.js";

const IDS = ["h_00000000000000a1", "h_00000000000000a2", "h_00000000000000a3"];
const UUID_2 = "uuid-of-web-2";

function host(id: string, health: "healthy" | "unhealthy" = "healthy", imageVersion = 1): HostRecord {
  const images = [{ line: "web", version: 2, uuid: `copy-${id}`, receivedUuid: UUID_2 }];
  return blogHost(id, { health, imageVersion, images: images as HostInventory["images"] });
}

function command(
  rolloutId: string,
  hostId: string,
  kind: "fetch" | "switch",
  state: CommandRecord["state"],
): CommandRecord {
  const id =
    kind === "fetch"
      ? rolloutCommandId.fetch(rolloutId, hostId, 1)
      : rolloutCommandId.switch(rolloutId, hostId, "blog");
  return {
    id,
    hostId,
    kind: kind === "fetch" ? "pullImage" : "deployApp",
    command: { commandId: id } as CommandRecord["command"],
    state,
    error: null,
    result: null,
    rolloutId,
    createdAt: 1,
    updatedAt: 1,
  };
}

function rollout(): RolloutRecord {
  return createRollout(
    {
      id: "ro_00000000000a",
      line: "web",
      version: 2,
      strategy: resolveStrategy({ canary: 1, waves: ["100%"] }),
      targets: IDS.map((hostId) => ({ hostId, hostName: hostId, apps: [{ name: "blog", version: 1 }] })),
      activeRolloutIds: [],
    },
    1000,
  );
}

describe("observeRollout with the last step's observations", () => {
  const offline = new Set<string>();
  const hub = { isOnline: (id: string) => !offline.has(id) } as unknown as AgentHub;
  const apps = new Set(["blog"]);

  /** Observe twice, with the cache and afresh: they must agree. */
  function observe(
    record: RolloutRecord,
    known: Map<string, HostRecord>,
    rows: CommandRecord[],
    cache: ObservationCache,
    appNames: ReadonlySet<string> = apps,
  ): FleetObservation {
    const deps = { hub, versionUuid: UUID_2, known, rows };
    const cached = observeRollout(record, appNames, { ...deps, cache });
    expect(cached).toEqual(observeRollout(record, appNames, deps));
    return cached;
  }

  it("keeps the observation of a host nothing changed for, and sees a change of any input afresh", () => {
    const record = rollout();
    const known = new Map(IDS.map((id) => [id, host(id)]));
    const rows = IDS.map((id) => command(record.id, id, "fetch", "running"));
    const cache = new ObservationCache();
    const first = observe(record, known, rows, cache);
    expect(first.hosts[IDS[0] as string]?.fetch?.state).toBe("running");

    // Nothing changed: the very same observations.
    const same = observe(record, known, [...rows], cache);
    for (const id of IDS) expect(same.hosts[id]).toBe(first.hosts[id]);

    // A command's new state (the repository replaces its record), a new command, a new inventory, a
    // link that went down: each host is seen again, the others keep theirs.
    const [a, b, c] = IDS as [string, string, string];
    const changedRows = [
      command(record.id, a, "fetch", "succeeded"),
      rows[1] as CommandRecord,
      command(record.id, b, "switch", "pending"),
      rows[2] as CommandRecord,
    ];
    known.set(c, host(c, "unhealthy"));
    const next = observe(record, known, changedRows, cache);
    expect(next.hosts[a]?.fetch?.state).toBe("succeeded");
    expect(next.hosts[b]?.switch?.state).toBe("pending");
    expect(next.hosts[c]?.apps[0]?.health).toBe("unhealthy");
    for (const id of IDS) expect(next.hosts[id]).not.toBe(same.hosts[id]);

    offline.add(a);
    const away = observe(record, known, changedRows, cache);
    expect(away.hosts[a]?.online).toBe(false);
    expect(away.hosts[b]).toBe(next.hosts[b]);
    offline.delete(a);

    // A host to roll back whose switch never ran has nothing to undo: that reads its step.
    const rolling: RolloutRecord = {
      ...record,
      hosts: {
        ...record.hosts,
        [c]: { ...(record.hosts[c] as RolloutRecord["hosts"][string]), state: "rolling-back" },
      },
    };
    const back = observe(rolling, known, changedRows, cache);
    expect(back.hosts[c]?.rollback?.state).toBe("succeeded");
    expect(back.hosts[b]).toBe(next.hosts[b]);

    // Other apps in scope: everything is seen afresh.
    const wider = observe(record, known, changedRows, cache, new Set(["blog", "shop"]));
    expect(wider.hosts[b]).not.toBe(next.hosts[b]);
  });

  it("sees a host with maintenance windows afresh on every step", () => {
    const record = rollout();
    const known = new Map(IDS.map((id) => [id, host(id)]));
    const cache = new ObservationCache();
    const windows = new Map([[IDS[0] as string, [{ days: [1], start: "02:00", durationMs: 3_600_000 }]]]);
    const deps = { hub, versionUuid: UUID_2, known, rows: [], cache, windows } as never;
    const first = observeRollout(record, apps, deps);
    const second = observeRollout(record, apps, deps);
    expect(second.hosts[IDS[0] as string]).not.toBe(first.hosts[IDS[0] as string]);
    expect(second.hosts[IDS[0] as string]?.windows).toEqual(first.hosts[IDS[0] as string]?.windows);
    expect(second.hosts[IDS[1] as string]).toBe(first.hosts[IDS[1] as string]);
  });
});
