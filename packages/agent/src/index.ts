export { type ObservedApp, planReconcile, type ReconcileStep } from "./apps/reconcile-plan.js";
export type { SwitchIntent, SwitchOutcome } from "./apps/switch-intent.js";
export {
  ChunkAssembler,
  type ChunkLayout,
  chunkLayoutOf,
  trimSpoolToVerified,
  type VerifiedChunk,
} from "./chunk-assembler.js";
export {
  type AgentConfig,
  DEFAULT_AGENT_POOL,
  DEFAULT_AGENT_STATE_DIR,
  type RawAgentConfig,
  resolveAgentConfig,
} from "./config.js";
export { backoffDelay } from "./connection.js";
export { EXIT_REBOOT_BY_RESTART, HostMaintenance } from "./executors/host-maintenance.js";
export { type JoinOptions, joinController } from "./join.js";
export { type AgentTestHooks, agentExitCode, EXIT_REFUSED, type RunningAgent, runAgent } from "./main.js";
export { AgentMetrics, type MetricsListen, parseMetricsListen } from "./metrics.js";
export type { AgentIdentity } from "./state.js";
