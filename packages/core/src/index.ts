export * from "./app-spec.js";
export * from "./ca-pin.js";
export * from "./config-fields.js";
export * from "./errors.js";
export * from "./failure-clusters.js";
export * from "./host-tools.js";
export * from "./host-update-create.js";
export * from "./host-update-dispatch.js";
export * from "./host-update-model.js";
export {
  COMMAND_REPORT_GRACE_MS,
  planHostUpdate,
} from "./host-update-planner.js";
export { hasHostInFlight, isSettledHostUpdate, isStoppedHostUpdate } from "./host-update-rules.js";
export * from "./host-update-strategy.js";
export * from "./host-update-verbs.js";
export * from "./image.js";
export * from "./join-token.js";
export * from "./logger.js";
export * from "./long-timer.js";
export * from "./maintenance-window.js";
export * from "./peer-sources.js";
export { SWITCHES_AT_WAVE_START } from "./rollout-commands.js";
export * from "./rollout-create.js";
export * from "./rollout-dispatch.js";
export * from "./rollout-model.js";
export { sameFields } from "./rollout-plan-context.js";
export * from "./rollout-planner.js";
export { isCanaryWave, rolloutReasonCode } from "./rollout-rules.js";
export * from "./rollout-strategy.js";
export * from "./rollout-timeline.js";
export * from "./rollout-verbs.js";
export * from "./units.js";
export * from "./version.js";
export type { WaveCandidate } from "./wave-assignment.js";
