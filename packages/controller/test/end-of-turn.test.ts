import { beforeEach, describe, expect, it } from "vitest";
import { EndOfTurn, hurryOverdue, OVERDUE_MS } from "../src/end-of-turn.js";
import { FLUSH_OVERDUE_MS, WriteBatch } from "../src/store/write-batch.js";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Let the microtasks queued so far run, without letting the event-loop turn end. */
const microtasks = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

/**
 * A flood of reports is a turn that does not end: Node handles every ready socket before the turn's
 * immediates. Here it is a test that keeps asking while it moves the clock, and the turn ends only
 * when the test lets it.
 */
describe("work at the end of the turn", () => {
  let clock: number;
  /** The names of the works that ran, in order. */
  let ran: string[];
  beforeEach(() => {
    clock = 0;
    ran = [];
  });
  const work = (name: string) =>
    new EndOfTurn(
      () => ran.push(name),
      () => clock,
    );

  it("runs once at the end of the turn, however often it is asked for", async () => {
    const flush = work("flush");
    for (let i = 0; i < 100; i++) flush.request();
    await microtasks();
    expect(ran).toEqual([]);
    expect(flush.waiting).toBe(true);
    await turn();
    expect(ran).toEqual(["flush"]);
    expect(flush.waiting).toBe(false);
    await turn();
    expect(ran).toEqual(["flush"]);
  });

  it("runs right after the request that finds it overdue, and not again at the turn's end", async () => {
    const flush = work("flush");
    flush.request();
    clock = OVERDUE_MS - 1;
    flush.request();
    await microtasks();
    expect(ran).toEqual([]);
    clock = OVERDUE_MS;
    flush.request();
    flush.request();
    await microtasks();
    expect(ran).toEqual(["flush"]);
    // Asked for again after that run: a new wait, until the end of the turn.
    flush.request();
    await turn();
    expect(ran).toEqual(["flush", "flush"]);
  });

  it("waits no longer than the most impatient of the requests it waits for, until it runs", async () => {
    const step = work("step");
    step.request(500);
    step.request(OVERDUE_MS);
    // A later, patient request does not undo an impatient one.
    step.request(500);
    clock = OVERDUE_MS;
    step.request(500);
    await microtasks();
    expect(ran).toEqual(["step"]);
    // The next wait is the new requests' own.
    step.request(500);
    clock += OVERDUE_MS;
    step.request(500);
    await microtasks();
    expect(ran).toEqual(["step"]);
    await turn();
    expect(ran).toEqual(["step", "step"]);
  });

  it("waits as long as the request says before it hurries", async () => {
    const step = work("step");
    step.request(300);
    clock = 299;
    step.request(300);
    await microtasks();
    expect(ran).toEqual([]);
    clock = 300;
    step.request(300);
    await microtasks();
    expect(ran).toEqual(["step"]);
  });

  it("runs what is overdue when a message that asks for nothing comes (hurryOverdue)", async () => {
    const flush = work("flush");
    const step = work("step");
    flush.request();
    step.request(300);
    clock = OVERDUE_MS;
    hurryOverdue();
    await microtasks();
    expect(ran).toEqual(["flush"]);
    clock = 300;
    hurryOverdue();
    await microtasks();
    expect(ran).toEqual(["flush", "step"]);
    await turn();
    expect(ran).toEqual(["flush", "step"]);
  });

  it("runs nothing once cancelled", async () => {
    const flush = work("flush");
    flush.request();
    clock = OVERDUE_MS;
    flush.request();
    flush.cancel();
    hurryOverdue();
    await turn();
    expect(ran).toEqual([]);
  });

  it("has the write batch flush within a flood of reports, every FLUSH_OVERDUE_MS", async () => {
    const flushedAt: number[] = [];
    const batch = new WriteBatch({
      transaction: (fn) => {
        flushedAt.push(clock);
        fn();
      },
      onFailure: () => undefined,
      now: () => clock,
    });
    // A report every millisecond for 4.5 waits, the turn never ending: each asks for a flush.
    for (; clock < 4.5 * FLUSH_OVERDUE_MS; clock++) {
      batch.schedule();
      await microtasks();
    }
    // Each wait begins with the first report after a flush.
    const wait = FLUSH_OVERDUE_MS;
    expect(flushedAt).toEqual([wait, 2 * wait + 1, 3 * wait + 2, 4 * wait + 3]);
    await turn();
    expect(flushedAt).toHaveLength(5);
  });
});
