import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registerCleanup } from "./cleanup-registry.js";
import { loopDevicesOf, makeLoopPool } from "./fleet/loop-pool.js";
import { tryRunSync } from "./host-commands.js";

const BACKING_FILE = "pool.img";

export interface LoopBtrfsOptions {
  /** Size of the backing file; btrfs needs at least 110 MiB. Default 1 GiB (sparse). */
  sizeMiB?: number;
  /** Mount with compress=zstd. */
  compress?: boolean;
  /** Directory to create the backing file and mount point in; default a fresh temp dir. */
  parentDir?: string;
  /** Label for the filesystem. */
  label?: string;
}

export interface LoopBtrfs {
  /** The temp dir that holds the backing file and the mount point. */
  dir: string;
  /** Where the filesystem is mounted. */
  mountPoint: string;
  loopDevice: string;
  backingFile: string;
  /** Unmount, detach, remove the temp dir. Safe to call twice. */
  destroy(): Promise<void>;
}

function undoSync(mountPoint: string, loopDevice: string | undefined, dir: string, removeDir: boolean): void {
  // A busy mount (a process still inside) is detached lazily so the loop device can still go.
  const plain = tryRunSync("umount", [mountPoint]);
  if (!plain.ok && !/not mounted|no mount point/i.test(plain.output))
    tryRunSync("umount", ["-l", mountPoint]);
  // Interrupted while making: the device is not known yet, but its backing file tells which it is.
  for (const device of loopDevice ? [loopDevice] : loopDevicesOf(join(dir, BACKING_FILE)))
    tryRunSync("losetup", ["-d", device]);
  if (removeDir) rmSync(dir, { recursive: true, force: true });
}

/** Make a btrfs filesystem on a sparse loopback file, mounted in a temp dir. Needs root. */
export async function createLoopBtrfs(options: LoopBtrfsOptions = {}): Promise<LoopBtrfs> {
  const ownDir = options.parentDir === undefined;
  const dir = ownDir ? mkdtempSync(join(tmpdir(), "gild-btrfs-")) : (options.parentDir as string);
  mkdirSync(dir, { recursive: true });
  const backingFile = join(dir, BACKING_FILE);
  const mountPoint = join(dir, "mnt");
  let loopDevice: string | undefined;
  const unregister = registerCleanup(`btrfs loop mount ${mountPoint}`, () =>
    undoSync(mountPoint, loopDevice, dir, ownDir),
  );
  try {
    loopDevice = await makeLoopPool(
      { backingFile, mountPoint, sizeMiB: options.sizeMiB ?? 1024 },
      { label: options.label ?? "gild-test", compress: options.compress ?? false },
    );
  } catch (err) {
    undoSync(mountPoint, loopDevice, dir, ownDir);
    unregister();
    throw err;
  }
  const device = loopDevice;
  let destroyed = false;
  return {
    dir,
    mountPoint,
    loopDevice: device,
    backingFile,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      undoSync(mountPoint, device, dir, ownDir);
      unregister();
    },
  };
}
