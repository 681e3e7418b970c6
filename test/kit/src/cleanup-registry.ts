/**
 * Cleanups that must run even when a test run is interrupted (Ctrl-C, a killed worker, an uncaught
 * error): mounts, loop devices, namespaces and processes made by the kit register a synchronous undo
 * here, and unregister it once they were cleaned up the normal way.
 */
type SyncCleanup = () => void;

const pending = new Map<number, { what: string; undo: SyncCleanup }>();
let nextId = 1;
let installed = false;

function runAll(): void {
  // Newest first: a mount made on a loop device is undone before the device is detached.
  const entries = [...pending.entries()].reverse();
  pending.clear();
  for (const [, entry] of entries) {
    try {
      entry.undo();
    } catch (err) {
      process.stderr.write(`gild testkit: cleanup of ${entry.what} failed: ${String(err)}\n`);
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", runAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      runAll();
      process.kill(process.pid, signal);
    });
  }
}

/** Register an undo for interruption; returns the function that unregisters it. */
export function registerCleanup(what: string, undo: SyncCleanup): () => void {
  install();
  const id = nextId++;
  pending.set(id, { what, undo });
  return () => {
    pending.delete(id);
  };
}
