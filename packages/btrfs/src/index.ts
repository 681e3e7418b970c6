export { detectStreamCapabilities, type StreamCapabilities } from "./capabilities.js";
export { ImageStore } from "./image-catalog.js";
export {
  type LaunchedTool,
  LaunchedToolError,
  type ToolExit,
  type ToolLauncher,
} from "./launcher.js";
export type { ImageMeta } from "./meta.js";
export { Pool, type PoolOpenOptions, type PoolPaths } from "./pool.js";
export { SpawnHelper } from "./spawn-helper.js";
export {
  type ExpectedStream,
  type ReceiveResult,
  receive,
  type SendOptions,
  type StreamFile,
  send,
} from "./stream.js";
export {
  createSubvolume,
  isSubvolume,
  type SubvolumeInfo,
  showSubvolume,
  snapshotSubvolume,
} from "./subvolume.js";
