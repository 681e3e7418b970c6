import { GildError } from "./errors.js";

/** Debian packages that provide the host programs gild runs, for hints. */
const PACKAGE_OF: Readonly<Record<string, string>> = {
  btrfs: "btrfs-progs",
  "mkfs.btrfs": "btrfs-progs",
  "systemd-nspawn": "systemd-container",
  "systemd-run": "systemd",
  systemctl: "systemd",
  debootstrap: "debootstrap",
  nsenter: "util-linux",
  setpriv: "util-linux",
  cp: "coreutils",
};

/** A failure to start a program as a coded error: a missing program says what to install. */
export function spawnFailure(file: string, err: unknown): GildError | undefined {
  const code = (err as { code?: string } | null)?.code;
  if (code !== "ENOENT") return undefined;
  const pkg = PACKAGE_OF[file];
  return new GildError("GILD_TOOL_MISSING", `${file} is not installed`, {
    hint: pkg ? `apt-get install ${pkg}` : `install ${file}`,
    cause: err,
  });
}

/**
 * GILD_NOT_ROOT unless the process runs as root (`uid`, default this process's): a daemon that
 * mounts, snapshots and runs containers fails at its first step otherwise, with a less clear error.
 */
export function assertRoot(what: string, uid: number | undefined = process.getuid?.()): void {
  if (uid === 0) return;
  throw new GildError("GILD_NOT_ROOT", `${what} must run as root (btrfs subvolumes, mounts, containers)`, {
    hint: "run it as root; the systemd units in deploy/systemd do",
  });
}
