export * from "./busybox-image.js";
export * from "./cleanup-registry.js";
export * from "./fleet/index.js";
export * from "./host-commands.js";
export * from "./loop-btrfs.js";
export * from "./requirements.js";
export * from "./tree-digest.js";
export * from "./wait.js";
