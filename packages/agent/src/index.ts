export { type ObservedApp, planReconcile, type ReconcileStep } from "./apps/reconcile-plan.js";
export type { SwitchIntent, SwitchOutcome } from "./apps/switch-intent.js";
export { type DownloadOptions, downloadArtifact } from "./artifact-download.js";
export {
  type ArtifactRead,
  type ArtifactReadOptions,
  isExpectedHeader,
  readArtifact,
} from "./artifact-reader.js";
export {
  ChunkFiller,
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
export { AgentMetrics } from "./metrics.js";
export { type MetricsListen, parseMetricsListen } from "./metrics-listen.js";
export {
  ChunkFetcher,
  type ChunkFetchOptions,
  type ChunkFetchReport,
  type ChunkSourceSpec,
  type FetchedChunk,
} from "./peer/chunk-fetcher.js";
export { controllerRangeReader, peerRangeReader, type RangeReader } from "./peer/chunk-sources.js";
export { ensureHostCertificate } from "./peer/host-certificate.js";
export { type HeldLayout, type Holding, heldChunks, PeerHoldings } from "./peer/peer-holdings.js";
export { CHUNK_WAIT_MS, PeerServer, type PeerTls } from "./peer/peer-server.js";
export { checkPeerTicket, PEER_TICKET_HEADER, ticketHeaderValue } from "./peer/peer-ticket.js";
export { type Peering, startPeering } from "./peer/peering.js";
export type { AgentIdentity } from "./state.js";
