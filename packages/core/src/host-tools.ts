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
