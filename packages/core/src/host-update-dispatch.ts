import type { HostUpdateCommand, HostUpdateRecord } from "./host-update-model.js";
import { isSettledHostUpdate } from "./host-update-rules.js";
import { hostsOfWave } from "./rollout-rules.js";

/**
 * The commands a stored host-update job calls for, host by host in wave order: the run of a host in
 * running-command, the reboot of a host rebooting. Whatever state the job is in, until it is settled:
 * a host already started finishes its steps. What the executor sends after every step (with
 * deterministic ids, so nothing is sent twice, also after a restart) and what the planner's
 * `commands` are made from: one rule for both.
 */
export function hostUpdateCommandsCalledFor(job: HostUpdateRecord): HostUpdateCommand[] {
  if (isSettledHostUpdate(job)) return [];
  const out: HostUpdateCommand[] = [];
  for (let wave = 0; wave < job.waves.length; wave++) {
    for (const host of hostsOfWave(job, wave)) {
      if (host.state === "running-command") out.push({ kind: "run", hostId: host.hostId });
      else if (host.state === "rebooting") out.push({ kind: "reboot", hostId: host.hostId });
    }
  }
  return out;
}

/** A command's identity within its job: what its deterministic id (`<job>:<key>`) is made of. */
export function hostUpdateCommandKey(command: HostUpdateCommand): string {
  return `${command.hostId}:${command.kind}`;
}

/**
 * Run commands no host has taken yet that the job no longer wants: all of them once it failed or was
 * aborted (such a host never started for real; its withdrawn command fails it). Reboots are never
 * withdrawn: the host ran its command already and is not to be left half-maintained.
 */
export function hostUpdateWithdrawals(job: HostUpdateRecord): Array<{ kind: "run" }> {
  return job.state === "failed" || job.state === "aborted" ? [{ kind: "run" }] : [];
}
