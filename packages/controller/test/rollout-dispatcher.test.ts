import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createControllerLogger, Store } from "@gild/controller";
import { createRollout, type RolloutRecord, resolveStrategy } from "@gild/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AgentHub } from "../src/agent-hub.js";
import type { AppService } from "../src/app-service.js";
import { CommandService } from "../src/command-service.js";
import type { ImageService } from "../src/image-service.js";
import { RolloutDispatcher } from "../src/rollout-dispatcher.js";
import { NEW_COMMANDS_PER_FLUSH } from "../src/store/commands-repo.js";
import type { Store as SourceStore } from "../src/store/store.js";
import { blogHost, createTestDatabase, type TestDatabase, Undo } from "./support.js";

const ROLLOUT = "ro_0000000000d1";
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const hostId = (i: number) => `h_${i.toString(16).padStart(16, "0")}`;

/** A running rollout whose every host is to switch now (a wave that just started). */
function switchingRollout(ids: readonly string[]): RolloutRecord {
  const record = createRollout(
    {
      id: ROLLOUT,
      line: "web",
      version: 2,
      strategy: resolveStrategy({ canary: 1, waves: ["100%"] }),
      targets: ids.map((id) => ({ hostId: id, hostName: id, apps: [{ name: "blog", version: 1 }] })),
      activeRolloutIds: [],
    },
    1000,
  );
  for (const step of Object.values(record.hosts)) step.state = "switching";
  return { ...record, state: "running", phase: "deploying", currentWave: 1 };
}

describe("the rollout dispatcher", () => {
  let dir: string;
  let database: TestDatabase;
  let store: Store;
  /**
   * The same store as the source's classes declare it: the store is the built one (its PostgreSQL
   * worker runs from dist), the dispatcher and command service the source (two declarations of one class).
   */
  let sourceStore: SourceStore;
  let commands: CommandService;
  /** What the hub sent, in order, with how many of the rollout's commands existed at that moment. */
  let sent: Array<{ commandId: string; madeThen: number }>;

  const undo = new Undo();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "gild-dispatcher-"));
    undo.push(() => rm(dir, { recursive: true, force: true }));
    database = await createTestDatabase(dir);
    undo.push(() => database.drop());
    store = Store.open(database.location);
    undo.push(() => store.close());
    sourceStore = store as unknown as SourceStore;
    sent = [];
    const hub = {
      addListener: () => undefined,
      send: (_hostId: string, message: { command: { commandId: string } }) => {
        sent.push({
          commandId: message.command.commandId,
          madeThen: store.commands.forRollout(ROLLOUT).length,
        });
        return true;
      },
    } as unknown as AgentHub;
    commands = new CommandService({ store: sourceStore, hub, log: createControllerLogger("silent") });
    undo.push(() => commands.close());
  });
  afterEach(() => undo.run());

  it("stores and sends the first slice of a wave's switches before it makes the rest, then sends every one once", async () => {
    const count = NEW_COMMANDS_PER_FLUSH * 2 + 30;
    const ids = Array.from({ length: count }, (_, i) => hostId(i + 1));
    for (const id of ids)
      store.hosts.insert({ id, name: `web-${id.slice(-4)}`, labels: {}, credentialHash: "x", joinedAt: 1 });
    const apps = {
      spec: (name: string) => ({ name }),
      deployBody: () => ({ deployApp: { imageVersion: 2, codeVersion: 0 } }),
    } as unknown as AppService;
    const dispatcher = new RolloutDispatcher({
      store: sourceStore,
      commands,
      images: {} as ImageService,
      apps,
      log: createControllerLogger("silent"),
      now: () => 5000,
      poke: () => undefined,
      retryLater: (_id, err) => {
        throw err;
      },
    });
    const record = switchingRollout(ids);
    const known = new Map(ids.map((id) => [id, blogHost(id)]));
    dispatcher.dispatch({ record, apps: null, createdBy: null } as never, new Set(["blog"]), known, []);

    // The first slice left while the others were still to be made: the wave's first switch does not
    // wait for the last one to be made.
    expect(sent).toHaveLength(NEW_COMMANDS_PER_FLUSH);
    expect(sent.every((s) => s.madeThen === NEW_COMMANDS_PER_FLUSH)).toBe(true);
    expect(store.commands.forRollout(ROLLOUT)).toHaveLength(count);

    // The rest go out a slice per turn, each once.
    const deadline = Date.now() + 10_000;
    while (sent.length < count && Date.now() < deadline) await turn();
    expect(sent.map((s) => s.commandId).sort()).toEqual(
      ids.map((id) => `${ROLLOUT}:${id}:switch:blog`).sort(),
    );
  });
});
