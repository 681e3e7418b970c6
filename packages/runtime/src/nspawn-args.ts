import type { ContainerSpec } from "./types.js";

// nspawn splits --bind=SRC:DST[:OPTS] at colons and interprets backslash escapes in both paths.
function escapeBindPath(path: string): string {
  return path.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
}

/**
 * What every systemd-nspawn gild runs is given, app containers and image builds alike (see
 * buildNspawnArgs for why each).
 */
function baseNspawnArgs(machine: string, directory: string): string[] {
  return [
    "--quiet",
    "--register=no",
    "--keep-unit",
    "--console=pipe",
    `--machine=${machine}`,
    `--directory=${directory}`,
    "--resolv-conf=bind-host",
    "--timezone=off",
    "--link-journal=no",
  ];
}

/**
 * The systemd-nspawn arguments of a one-shot command in an image being built (`gild image update`):
 * the host's network (for apt), and an init of nspawn's own as PID 1 so the command can be anything.
 */
export function buildCommandNspawnArgs(
  rootfs: string,
  command: readonly string[],
  env: Record<string, string>,
  machine: string,
): string[] {
  return [
    ...baseNspawnArgs(machine, rootfs),
    "--as-pid2",
    ...Object.entries(env).map(([k, v]) => `--setenv=${k}=${v}`),
    "--",
    ...command,
  ];
}

/**
 * The systemd-nspawn arguments for a (validated) spec; shared by both drivers. Every choice here was
 * measured on systemd 252 (README.md, "Measured"):
 * - --register=no --keep-unit: no machined and no scope unit of its own, so it runs without systemd as
 *   PID 1, and as a systemd service it stays in that service's cgroup.
 * - --kill-signal=SIGTERM: SIGTERM to nspawn is forwarded to the container's PID 1 (default: SIGKILL).
 * - --console=pipe: the container's stdout/stderr are nspawn's own fds (the log file), with no pty
 *   that nspawn copies from, so output keeps flowing even if nspawn itself is killed.
 * - --resolv-conf=bind-host: the host's resolver, bind-mounted; the image's own file is never written
 *   (copy-host/auto overwrite it).
 * - --timezone=off, --link-journal=no: nspawn changes nothing in the root beyond mount points.
 */
export function buildNspawnArgs(spec: ContainerSpec, machine: string): string[] {
  const args = [...baseNspawnArgs(machine, spec.rootfs), "--kill-signal=SIGTERM"];
  for (const bind of spec.binds) {
    const flag = bind.readOnly ? "--bind-ro" : "--bind";
    args.push(`${flag}=${escapeBindPath(bind.source)}:${escapeBindPath(bind.target)}`);
  }
  for (const name of Object.keys(spec.env).sort()) {
    args.push(`--setenv=${name}=${spec.env[name]}`);
  }
  if (spec.netnsPath !== undefined) args.push(`--network-namespace-path=${spec.netnsPath}`);
  args.push("--", ...spec.command);
  return args;
}
