export * from "./cleanup-registry.js";
export * from "./host-commands.js";
export * from "./loop-btrfs.js";
export * from "./requirements.js";
export * from "./wait.js";
export * from "./tree-digest.js";
