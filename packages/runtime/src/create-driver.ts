import { existsSync } from "node:fs";
import { ProcessDriver } from "./process-driver.js";
import { SystemdDriver } from "./systemd-driver.js";
import type { DriverKind, RuntimeDriver, RuntimeDriverOptions } from "./types.js";

/** True when systemd is PID 1 here: the test systemd itself uses (sd_booted). */
export function systemdIsInit(): boolean {
  return existsSync("/run/systemd/system");
}

/** The driver that `auto` picks on this host. */
export function detectDriverKind(): DriverKind {
  return systemdIsInit() ? "systemd" : "process";
}

/** A runtime driver: systemd units where systemd is PID 1, detached nspawn children elsewhere. */
export function createRuntimeDriver(kind: "auto" | DriverKind, options: RuntimeDriverOptions): RuntimeDriver {
  const chosen = kind === "auto" ? detectDriverKind() : kind;
  switch (chosen) {
    case "process":
      return new ProcessDriver(options);
    case "systemd":
      return new SystemdDriver(options);
    default: {
      const never: never = chosen;
      throw new Error(`unknown runtime driver kind ${String(never)}`);
    }
  }
}
