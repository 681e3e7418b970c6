import { readFileSync } from "node:fs";

/** One line of a mountinfo file. */
export interface MountEntry {
  id: number;
  /** major:minor of the filesystem. */
  device: string;
  /** The directory of that filesystem mounted here. */
  root: string;
  mountPoint: string;
  /** The mount source: "/dev/loop3" for a pool. */
  source: string;
  fstype: string;
}

const gone = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ESRCH";
};

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if (gone(err) || (err as NodeJS.ErrnoException).code === "EACCES") return undefined;
    throw err;
  }
}

const decodeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/**
 * The mounts a process sees (/proc/<pid>/mountinfo: only those reachable from its root, so a container
 * does not show what lies outside its root); [] when it is gone.
 */
export function mountsOf(pid: number | "self"): MountEntry[] {
  const text = readText(`/proc/${pid}/mountinfo`) ?? "";
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const [head, tail] = line.split(" - ");
    if (!head || !tail) continue;
    const fields = head.split(" ");
    const [fstype, source] = tail.split(" ");
    if (fields[4] === undefined || fstype === undefined || source === undefined) continue;
    out.push({
      id: Number(fields[0]),
      device: fields[2] ?? "",
      root: decodeOctal(fields[3] ?? ""),
      mountPoint: decodeOctal(fields[4]),
      source: decodeOctal(source),
      fstype,
    });
  }
  return out;
}

/** Whether path is dir or below it. */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir.replace(/\/+$/, "")}/`);
}
