import { randomBytes } from "node:crypto";
import { open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * Replace a file all at once and durably: written beside it and flushed to disk (fsync), renamed over
 * it, then the directory flushed, so a crash or a power loss leaves the old content or the new, never
 * half of one. With `mode`, the file has exactly that mode (fchmod: the umask does not apply).
 */
export async function writeFileAtomic(path: string, content: string, mode?: number): Promise<void> {
  // A name of its own per write: two writers of one file must not rename each other's temp away.
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const file = await open(temp, "w", mode ?? 0o644);
  try {
    if (mode !== undefined) await file.chmod(mode);
    await file.writeFile(content);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** A state file's text, or null when it does not exist (any other failure is thrown as it is). */
export async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
