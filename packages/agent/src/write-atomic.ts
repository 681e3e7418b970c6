import { chmod, rename, writeFile } from "node:fs/promises";

/**
 * Replace a file all at once: written beside it, then renamed over it, so a crash leaves the old
 * content or the new, never half of one. With `mode`, the file has exactly that mode.
 */
export async function writeFileAtomic(path: string, content: string, mode?: number): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, content, mode === undefined ? {} : { mode });
  // writeFile's mode applies only to a new file (and passes through the umask).
  if (mode !== undefined) await chmod(temp, mode);
  await rename(temp, path);
}
