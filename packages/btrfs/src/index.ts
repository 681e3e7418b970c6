export { aptMirror } from "./apt-mirror.js";
export { detectStreamCapabilities, type StreamCapabilities } from "./capabilities.js";
export {
  type BuildOptions,
  type DebootstrapSource,
  ImageStore,
  runInRoot,
  type UpdateOptions,
} from "./image-store.js";
export type { ImageMeta } from "./meta.js";
export { Pool, type PoolOpenOptions, type PoolPaths } from "./pool.js";
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
  findSubvolumes,
  isSubvolume,
  parseSubvolumeShow,
  type SubvolumeInfo,
  showSubvolume,
  snapshotSubvolume,
  subvolumeSize,
} from "./subvolume.js";
