export * from "./buffer-pool.js";
export * from "./codec.js";
export * from "./limits.js";
export * from "./messages.js";
export * from "./model-json.js";
