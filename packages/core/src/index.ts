export * from "./errors.js";
export * from "./image.js";
export * from "./logger.js";
export * from "./rollout-model.js";
export * from "./units.js";
