import { open } from "node:fs/promises";

// Enough for 20 lines of ordinary log output; a tail never reads a whole big log.
const MAX_TAIL_BYTES = 64 * 1024;

/** The last `lines` lines of a text file ("" when it is missing or empty), for error reasons. */
export async function tailFile(path: string, lines = 20): Promise<string> {
  let handle: import("node:fs/promises").FileHandle;
  try {
    handle = await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, MAX_TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const all = buffer.toString("utf8").replace(/\r/g, "").split("\n");
    if (all.at(-1) === "") all.pop();
    // When the read started mid-line, that first partial line is not shown.
    if (length < size) all.shift();
    return all.slice(-lines).join("\n");
  } finally {
    await handle.close();
  }
}
