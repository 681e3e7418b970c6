import type { gild } from "./gen/agent.js";

// The model of what controller and agents exchange (model.ts), plus the two wire messages that are
// not part of the control channel's model: the signed artifact manifest and the artifact socket's
// first frame, the same in every protocol version.
export * from "./model.js";

export type ArtifactManifest = gild.v2.ArtifactManifest.$Properties;
export type TransferHeader = gild.v2.TransferHeader.$Properties;
