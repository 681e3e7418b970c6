import { fileURLToPath } from "node:url";
import { capture, createLoopBtrfs, type LoopBtrfs } from "@gild/testkit";
import { describeWith } from "@gild/testkit/gate";
import { afterAll, beforeAll, expect, it } from "vitest";

// In a process of its own: what this test guards against is a process killed by a signal.
const WRITER = `
import { execFileSync } from "node:child_process";
const { openSqlite } = await import(process.env.CONTROLLER_DIST);
const dir = process.env.DATA_DIR;
const db = openSqlite(dir + "/gild.db");
db.raw.exec("CREATE TABLE filler (v TEXT NOT NULL)");
const insert = db.prepare("INSERT INTO filler (v) VALUES (?)");
for (let i = 0; i < 200; i++) insert.run("x".repeat(500));
// Every byte the filesystem has left, in ever smaller files.
let size = 64 * 1024 * 1024;
for (let n = 0; size >= 4096; n++) {
  try {
    execFileSync("fallocate", ["-l", String(size), dir + "/filler-" + n], { stdio: "ignore" });
  } catch {
    size = Math.floor(size / 2);
  }
}
const codes = {};
let written = 0;
for (let i = 0; i < 400; i++) {
  try {
    insert.run("y".repeat(500));
    written++;
  } catch (err) {
    codes[err.code] = (codes[err.code] ?? 0) + 1;
  }
  // Write back what is dirty: the next write to a page of the WAL index needs a new block then.
  if (i % 20 === 0) execFileSync("sync", ["-f", dir + "/gild.db"]);
}
db.close();
console.log(JSON.stringify({ written, codes }));
`;

describeWith(["root", "btrfs"], "the SQLite store on a btrfs that is full", () => {
  let fs: LoopBtrfs;

  beforeAll(async () => {
    fs = await createLoopBtrfs({ sizeMiB: 128 });
  });

  afterAll(async () => {
    await fs?.destroy();
  });

  it("refuses writes with SQLITE_FULL and the process lives on: no SIGBUS from a mapped WAL index", async () => {
    const child = await capture(process.execPath, ["--input-type=module", "-e", WRITER], {
      env: {
        ...process.env,
        CONTROLLER_DIST: fileURLToPath(new URL("../dist/index.js", import.meta.url)),
        DATA_DIR: fs.mountPoint,
      },
    });
    // A signal shows as 128 + its number: 135 is SIGBUS.
    expect(child.code, child.stderr).toBe(0);
    const { stdout } = child;
    const { codes } = JSON.parse(stdout) as { written: number; codes: Record<string, number> };
    // The filesystem was full: writes were refused, each with a code the store reads as a full disk.
    expect(Object.keys(codes).length, stdout).toBeGreaterThan(0);
    for (const name of Object.keys(codes)) expect(name).toMatch(/^SQLITE_(FULL|IOERR)/);
  });
});
