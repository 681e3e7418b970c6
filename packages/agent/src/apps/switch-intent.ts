import type { DeployResult } from "@gild/protocol";

/** The coded error a failed switch ends with, as recorded (SerializedError's shape). */
export interface RecordedError {
  code: string;
  message: string;
  hint?: string;
}

/** How a switch ended: what its command answers, recorded before the command's journal entry is. */
export type SwitchOutcome =
  | { ok: true; result: DeployResult }
  | { ok: false; result: DeployResult; error: RecordedError };

/**
 * A switch in progress on one app (apps/<app>/switch.json), written before the first container is
 * touched and removed only once the command's result is in the journal. An agent killed in between
 * finds it at start: with no outcome it finishes the switch, with one it records that outcome.
 */
export interface SwitchIntent {
  /** The command that asked for it; "" for a switch no command asked for (nothing to journal). */
  commandId: string;
  /** The command kind (deployApp or rollbackApp): how its journal entry is written. */
  kind: "deployApp" | "rollbackApp";
  app: string;
  /** The generation that ran before (null: the app's first generation). */
  from: number | null;
  to: number;
  /** `to` was made for this switch: it is removed again when the switch fails. */
  isNew: boolean;
  healthyDeadlineMs: number;
  startedAt: number;
  outcome: SwitchOutcome | null;
}

/** A switch whose restored generation did not pass its health gate (apps/<app>/rollback-failed.json). */
export interface RollbackFailure {
  generation: number;
  reason: string;
  at: number;
}
