import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SqliteDb } from "@gild/controller";
import { Store } from "@gild/controller";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NEW_COMMANDS_PER_FLUSH } from "../src/store/commands-repo.js";
import type { HostInventory } from "../src/store/hosts-repo.js";
import { createTestDatabase, type TestDatabase, Undo } from "./support.js";

const HOST = "h_00000000000000a1";
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What the database itself holds of a command, bypassing the repository (and what waits in it). */
const onDisk = (store: Store, id: string) =>
  store.db.prepare("SELECT state, body FROM commands WHERE id = ?").get(id) as
    | { state: string; body: string | null }
    | undefined;

/** SQLite's synchronous pragma (2: FULL), or PostgreSQL's synchronous_commit, outside a transaction. */
const durableSetting = (store: Store): unknown =>
  store.db.kind === "sqlite"
    ? (store.db as SqliteDb).raw.pragma("synchronous", { simple: true })
    : (store.db.prepare("SHOW synchronous_commit").get() as { synchronous_commit: string })
        .synchronous_commit;

const inventory = (freeBytes: number): HostInventory =>
  ({
    hostId: HOST,
    reportedAtMs: 0,
    poolFreeBytes: freeBytes,
    images: [],
    apps: [],
  }) as unknown as HostInventory;

describe("writes batched per event-loop turn", () => {
  let dir: string;
  let database: TestDatabase;
  let store: Store;
  let transactions: number;
  const undo = new Undo();
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "gild-write-batch-"));
    undo.push(() => rm(dir, { recursive: true, force: true }));
    database = await createTestDatabase(dir);
    undo.push(() => database.drop());
    store = Store.open(database.location);
    undo.push(() => store.close());
    store.hosts.insert({ id: HOST, name: "web-1", labels: {}, credentialHash: "x", joinedAt: 1 });
    transactions = 0;
    store.onTransaction = () => transactions++;
  });
  afterEach(() => undo.run());

  const issue = (
    id: string,
    rolloutId: string | null = "ro_00000000aa",
    onStored?: () => void,
    kind = "pullImage",
  ) =>
    store.commands.insertIfAbsent(
      { id, hostId: HOST, kind, command: { commandId: id } as never, rolloutId, now: 5 },
      onStored,
    );

  it("reads see a write at once; the database gets every write of the turn in one transaction", async () => {
    for (let i = 0; i < 100; i++) expect(issue(`c${i}`)).toBe(true);
    expect(issue("c0")).toBe(false);
    store.commands.setRunning("c1", 6);
    expect(store.commands.finish("c2", "succeeded", { ok: true }, null, 7)).toBe(true);
    expect(store.commands.finish("c2", "failed", null, null, 8)).toBe(false);
    store.hosts.setInventory(HOST, inventory(1));
    expect(store.commands.get("c1")?.state).toBe("running");
    expect(store.commands.forRollout("ro_00000000aa").map((c) => c.id)).toHaveLength(100);
    expect(store.commands.openForHost(HOST)).toHaveLength(99);
    expect(store.hosts.byId(HOST)?.inventory?.poolFreeBytes).toBe(1);
    expect(onDisk(store, "c0")).toBeUndefined();

    await turn();
    expect(transactions).toBe(1);
    // Reports alone are committed without a sync of their own; the setting comes back after.
    expect(durableSetting(store)).toBe(store.db.kind === "sqlite" ? 2 : "on");
    expect(onDisk(store, "c1")?.state).toBe("running");
    expect(onDisk(store, "c2")?.state).toBe("succeeded");
    expect(store.commands.get("c2")?.result).toEqual({ ok: true });
    expect(store.hosts.list()[0]?.inventory?.poolFreeBytes).toBe(1);
  });

  it("runs what waits for a write only once it is committed", async () => {
    issue("c1");
    let seen: unknown = "not yet";
    store.batch.afterCommit(() => {
      seen = onDisk(store, "c1")?.state;
    });
    expect(seen).toBe("not yet");
    await turn();
    expect(seen).toBe("pending");
  });

  it("writes what waits before an explicit transaction's own writes, in it", () => {
    issue("c1", "ro_00000000aa", undefined, "deployApp");
    store.transaction(() => {
      expect(onDisk(store, "c1")?.state).toBe("pending");
    });
    expect(transactions).toBe(1);
  });

  it("keeps what a failed transaction took, and writes it with the next one", async () => {
    issue("c1");
    const afterCommit: string[] = [];
    store.batch.afterCommit(() => afterCommit.push("sent"));
    expect(() =>
      store.transaction(() => {
        throw new Error("the disk is full");
      }),
    ).toThrow("the disk is full");
    expect(onDisk(store, "c1")).toBeUndefined();
    expect(store.commands.get("c1")?.state).toBe("pending");
    expect(afterCommit).toEqual([]);
    await turn();
    expect(onDisk(store, "c1")?.body).not.toBeNull();
    expect(afterCommit).toEqual(["sent"]);
  });

  it("withdraws pending commands that wait in the batch and those on disk alike", async () => {
    issue("c1");
    await turn();
    issue("c2");
    expect(store.commands.cancelPending("ro_00000000aa", HOST, 9, ["pullImage"]).sort()).toEqual([
      "c1",
      "c2",
    ]);
    expect(store.commands.get("c2")?.error?.code).toBe("GILD_COMMAND_CANCELLED");
    await turn();
    expect(onDisk(store, "c1")?.state).toBe("failed");
    expect(onDisk(store, "c2")?.state).toBe("failed");
  });

  it("keeps a job's commands in memory, current with every write, and reads a body only when asked", async () => {
    const job = "ro_00000000aa";
    issue(`${job}:${HOST}:fetch:1`);
    await turn();
    // A store opened afresh reads the job's commands from the database (one controller at a time).
    store.close();
    const again = Store.open(database.location);
    store = again;
    {
      expect(again.commands.forRollout(job).map((c) => c.state)).toEqual(["pending"]);
      const [read] = again.commands.forRollout(job);
      expect(read?.command.commandId).toBe(`${job}:${HOST}:fetch:1`);
      again.commands.insertIfAbsent({
        id: `${job}:${HOST}:switch:blog`,
        hostId: HOST,
        kind: "deployApp",
        command: { commandId: `${job}:${HOST}:switch:blog` } as never,
        rolloutId: job,
        now: 6,
      });
      again.commands.finish(`${job}:${HOST}:fetch:1`, "succeeded", null, null, 7);
      expect(again.commands.forRollout(job).map((c) => [c.id, c.state])).toEqual([
        [`${job}:${HOST}:fetch:1`, "succeeded"],
        [`${job}:${HOST}:switch:blog`, "pending"],
      ]);
      again.commands.deleteForHost(HOST);
      expect(again.commands.forRollout(job).map((c) => c.state)).toEqual(["succeeded"]);
    }
  });

  it("changes the state of a job's command without reading its body, and never keeps one it read", async () => {
    const job = "ro_00000000aa";
    const [fetch1, fetch2, fetch3] = [1, 2, 3].map((n) => `${job}:${HOST}:fetch:${n}`) as [
      string,
      string,
      string,
    ];
    for (const id of [fetch1, fetch2, fetch3]) issue(id);
    await turn();
    store.close();
    store = Store.open(database.location);
    let bodyReads = 0;
    const prepare = store.db.prepare.bind(store.db);
    store.db.prepare = ((sql: string) => {
      if (/SELECT payload, body FROM commands/.test(sql)) bodyReads++;
      return prepare(sql);
    }) as typeof store.db.prepare;
    expect(store.commands.forRollout(job).map((c) => c.state)).toEqual(["pending", "pending", "pending"]);
    store.commands.setRunning(fetch1, 6);
    expect(store.commands.finish(fetch1, "succeeded", { ok: true }, null, 7)).toBe(true);
    expect(store.commands.cancelPending(job, HOST, 8, ["pullImage"]).sort()).toEqual([fetch2, fetch3]);
    await turn();
    expect(bodyReads).toBe(0);
    expect(store.commands.forRollout(job).map((c) => [c.state, c.updatedAt])).toEqual([
      ["succeeded", 7],
      ["failed", 8],
      ["failed", 8],
    ]);
    expect(onDisk(store, fetch1)?.state).toBe("succeeded");
    // Asked for, the body is read (with the state it has now), and read again the next time.
    const [done, cancelled] = store.commands.forRollout(job);
    expect(done?.command.commandId).toBe(fetch1);
    expect(done?.command.commandId).toBe(fetch1);
    expect(bodyReads).toBe(2);
    // What the changes did not touch is kept, and a spread copies the command too.
    expect([done?.result, done?.error, done?.createdAt, done?.rolloutId]).toEqual([
      { ok: true },
      null,
      5,
      job,
    ]);
    expect(cancelled?.error).not.toBeNull();
    expect({ ...done }.command?.commandId).toBe(fetch1);
    expect(bodyReads).toBe(3);
  });

  it("writes a wave's new commands a slice per turn, and sends each only once it is on disk", async () => {
    const count = 2 * NEW_COMMANDS_PER_FLUSH + 7;
    const sent: string[] = [];
    const sentBeforeStored: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = `c${i}`;
      issue(id, null, () => {
        if (onDisk(store, id) === undefined) sentBeforeStored.push(id);
        sent.push(id);
      });
    }
    // A status of a command already stored rides with the first slice, whatever came before it.
    store.commands.finish("c0", "succeeded", null, null, 6);
    expect(store.commands.unstored("c0")).toBe(true);
    await turn();
    expect(transactions).toBe(1);
    expect(sent).toHaveLength(NEW_COMMANDS_PER_FLUSH);
    expect(onDisk(store, `c${NEW_COMMANDS_PER_FLUSH - 1}`)?.state).toBe("pending");
    expect(onDisk(store, `c${NEW_COMMANDS_PER_FLUSH}`)).toBeUndefined();
    expect(onDisk(store, "c0")?.state).toBe("succeeded");
    expect(store.commands.unstored("c0")).toBe(false);
    expect(store.commands.unstored(`c${NEW_COMMANDS_PER_FLUSH}`)).toBe(true);
    // What waits is read as before.
    expect(store.commands.get(`c${count - 1}`)?.state).toBe("pending");
    const deadline = Date.now() + 10_000;
    while (sent.length < count && Date.now() < deadline) await turn();
    expect(transactions).toBe(3);
    expect(sent).toEqual(Array.from({ length: count }, (_, i) => `c${i}`));
    expect(sentBeforeStored).toEqual([]);
  });

  it("writes a turn's new commands that are not pulls first: a wave's switches do not wait behind prefetches", async () => {
    const pulls = NEW_COMMANDS_PER_FLUSH + 10;
    const sent: string[] = [];
    for (let i = 0; i < pulls; i++) issue(`p${i}`, null, () => sent.push(`p${i}`));
    for (let i = 0; i < 3; i++) issue(`s${i}`, null, () => sent.push(`s${i}`), "deployApp");
    await turn();
    expect(transactions).toBe(1);
    const firstPulls = Array.from({ length: NEW_COMMANDS_PER_FLUSH - 3 }, (_, i) => `p${i}`);
    expect(sent).toEqual([...firstPulls, "s0", "s1", "s2"]);
    expect(onDisk(store, "s2")?.state).toBe("pending");
    expect(onDisk(store, `p${NEW_COMMANDS_PER_FLUSH - 3}`)).toBeUndefined();
    expect(store.commands.unstored(`p${pulls - 1}`)).toBe(true);
    const deadline = Date.now() + 10_000;
    while (sent.length < pulls + 3 && Date.now() < deadline) await turn();
    expect(transactions).toBe(2);
    expect(sent.slice(NEW_COMMANDS_PER_FLUSH)).toEqual(
      Array.from({ length: 13 }, (_, i) => `p${NEW_COMMANDS_PER_FLUSH - 3 + i}`),
    );
  });

  it("writes every waiting command in an explicit transaction, and sends them after it commits", () => {
    const count = NEW_COMMANDS_PER_FLUSH + 1;
    let sent = 0;
    for (let i = 0; i < count; i++) issue(`c${i}`, null, () => sent++, "deployApp");
    store.transaction(() => {
      expect(onDisk(store, `c${count - 1}`)?.state).toBe("pending");
      expect(sent).toBe(0);
    });
    expect(sent).toBe(count);
  });

  it("leaves new pulls to the turns' flushes from an explicit transaction, and every state change in it", async () => {
    const sent: string[] = [];
    issue("stored", null, undefined, "deployApp");
    await turn();
    for (let i = 0; i < 3; i++) issue(`p${i}`, "ro_00000000aa", () => sent.push(`p${i}`));
    issue("s0", "ro_00000000aa", () => sent.push("s0"), "deployApp");
    store.commands.finish("stored", "succeeded", null, null, 6);
    // Withdrawn before it was ever written: still a new pull, written later as it is now.
    store.commands.cancelPending("ro_00000000aa", HOST, 7, ["pullImage"]);
    transactions = 0;
    store.transaction(() => {
      expect(onDisk(store, "s0")?.state).toBe("pending");
      expect(onDisk(store, "stored")?.state).toBe("succeeded");
      expect(onDisk(store, "p0")).toBeUndefined();
    });
    expect(sent).toEqual(["s0"]);
    expect(store.commands.unstored("p0")).toBe(true);
    // Reads see them meanwhile.
    expect(store.commands.get("p2")?.state).toBe("failed");
    expect(store.commands.forRollout("ro_00000000aa").map((c) => c.id)).toEqual(["p0", "p1", "p2", "s0"]);
    const deadline = Date.now() + 10_000;
    while (sent.length < 4 && Date.now() < deadline) await turn();
    expect(transactions).toBe(2);
    expect(sent).toEqual(["s0", "p0", "p1", "p2"]);
    expect(onDisk(store, "p1")?.state).toBe("failed");
  });

  it("sends a command whose first write failed once a later one stores it", async () => {
    let sent = 0;
    issue("c1", null, () => sent++);
    expect(() =>
      store.transaction(() => {
        throw new Error("the disk is full");
      }),
    ).toThrow("the disk is full");
    // Its state changes meanwhile: it is still new, and still waits to be sent.
    store.commands.setRunning("c1", 6);
    expect(sent).toBe(0);
    expect(store.commands.unstored("c1")).toBe(true);
    await turn();
    expect(onDisk(store, "c1")?.state).toBe("running");
    expect(sent).toBe(1);
  });

  it("flushes within the turn when a send waits (a planning step issued commands), not for reports alone", () => {
    store.commands.setRunning("c-none", 6);
    store.hosts.setInventory(HOST, inventory(2));
    store.batch.flushNow();
    expect(transactions).toBe(0);
    let sent = false;
    issue("c1", null, () => {
      sent = true;
    });
    store.batch.flushNow();
    expect(transactions).toBe(1);
    expect(sent).toBe(true);
    expect(onDisk(store, "c1")?.state).toBe("pending");
  });

  it("writes what waits when the store closes, new pulls with the rest", () => {
    issue("c1");
    issue("c2", null, undefined, "deployApp");
    store.close();
    store = Store.open(database.location);
    expect(store.commands.get("c1")?.state).toBe("pending");
    expect(store.commands.get("c2")?.state).toBe("pending");
  });
});
