import { describe, expect, it } from "vitest";
import { Undo } from "./support.js";

// The tests' own cleanup (support.ts): what a setup made is undone even when the setup failed half way.
describe("Undo", () => {
  it("runs every step in reverse, each on its own, then throws the first failure", async () => {
    const undo = new Undo();
    const ran: string[] = [];
    undo.push(() => ran.push("dir"));
    undo.push(async () => {
      ran.push("database");
      throw new Error("drop failed");
    });
    undo.push(() => {
      ran.push("store");
      throw new Error("close failed");
    });
    await expect(undo.run()).rejects.toThrow("close failed");
    expect(ran).toEqual(["store", "database", "dir"]);
    // Run once: the next test's steps start from none.
    await undo.run();
    expect(ran).toHaveLength(3);
  });
});
