import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runHostCommand } from "@gild/runtime";
import { afterAll, describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "gild-host-command-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const flag = join(dir, "reboot-required");
const opts = { timeoutMs: 10_000, maxOutputBytes: 8192, rebootRequiredFile: flag };

describe("runHostCommand", () => {
  it("runs an argv and reports its exit code and output, stdout and stderr interleaved", async () => {
    const out = await runHostCommand(["/bin/sh", "-c", "echo one; echo two >&2; exit 3"], opts);
    expect(out).toEqual({ exitCode: 3, outputTail: "one\ntwo\n", rebootRequired: false, timedOut: false });
  });

  it("says a reboot is required when the host's flag file exists after the command", async () => {
    const out = await runHostCommand(["/bin/sh", "-c", `touch '${flag}'`], opts);
    expect(out).toMatchObject({ exitCode: 0, rebootRequired: true });
  });

  it("keeps only the output's last bytes", async () => {
    const out = await runHostCommand(
      ["/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"],
      { ...opts, maxOutputBytes: 100 },
    );
    expect(out.outputTail.length).toBe(100);
    expect(out.outputTail.endsWith("line-1999\n")).toBe(true);
  });

  it("kills the whole process group at the timeout", async () => {
    const marker = join(dir, "survivor");
    const started = Date.now();
    const out = await runHostCommand(["/bin/sh", "-c", `(sleep 2; touch '${marker}') & echo started; wait`], {
      ...opts,
      timeoutMs: 300,
    });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(out).toMatchObject({ exitCode: -1, timedOut: true });
    expect(out.outputTail).toMatch(/^started\n\[gild: killed after 0 s\]$/);
    // The background child was in the group: it never got to touch the marker. (An absence has no
    // event to wait for: give it past the time it would have taken.)
    await new Promise((r) => setTimeout(r, 2500));
    expect(() => writeFileSync(join(marker), "", { flag: "wx" })).not.toThrow();
  });

  it("reports a program that cannot start as exit -1 with the reason", async () => {
    const out = await runHostCommand([join(dir, "no-such-program")], opts);
    expect(out.exitCode).toBe(-1);
    expect(out.outputTail).toMatch(/ENOENT|no such file/i);
  });
});
