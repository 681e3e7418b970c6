import { release } from "node:os";
import { runTool } from "./exec.js";

/** What this host's kernel and btrfs-progs can do with send streams. */
export interface StreamCapabilities {
  kernelVersion: string;
  progsVersion: string;
  /** `btrfs send --compressed-data` (stream protocol 2) works here: kernel >= 6.0 and progs that know it. */
  canSendCompressed: boolean;
  /** Highest stream protocol `btrfs receive` here understands. */
  maxReceiveStreamVersion: 1 | 2;
}

function majorMinor(version: string): [number, number] {
  const match = /(\d+)\.(\d+)/.exec(version);
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

function atLeast(version: string, major: number, minor: number): boolean {
  const [a, b] = majorMinor(version);
  return a > major || (a === major && b >= minor);
}

/** Detect stream capabilities from `uname -r`, `btrfs --version` and `btrfs send --help`; nothing assumed. */
export async function detectStreamCapabilities(): Promise<StreamCapabilities> {
  const kernelVersion = release();
  const progs = await runTool("btrfs", ["--version"]);
  const progsVersion = /v?(\d+\.\d+(?:\.\d+)?)/.exec(progs.stdout)?.[1] ?? "unknown";
  // `btrfs send --help` exits 0 and prints usage on stdout in every version we know.
  const help = await runTool("btrfs", ["send", "--help"]).catch(() => ({ stdout: "", stderr: "" }));
  const helpText = help.stdout + help.stderr;
  const progsKnowsV2 = atLeast(progsVersion, 6, 0);
  return {
    kernelVersion,
    progsVersion,
    canSendCompressed: atLeast(kernelVersion, 6, 0) && progsKnowsV2 && helpText.includes("--compressed-data"),
    maxReceiveStreamVersion: progsKnowsV2 ? 2 : 1,
  };
}
