import { readFile } from "node:fs/promises";
import { runHost } from "./host-exec.js";

/** This boot's id: it changes with every boot, so an agent can tell a reboot from a restart. */
export async function currentBootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
}

/**
 * Ask systemd to reboot the host. It returns once systemd took the request; the agent is stopped with
 * everything else moments later. Fails (GILD_COMMAND_FAILED) where systemd is not PID 1.
 */
export async function rebootHost(): Promise<void> {
  await runHost("systemctl", ["reboot"], { failureCode: "GILD_COMMAND_FAILED", timeoutMs: 60_000 });
}
