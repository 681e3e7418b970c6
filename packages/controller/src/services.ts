import type { ImageStore, StreamCapabilities } from "@gild/btrfs";
import type { Logger } from "@gild/core";
import type { ImageBuilder } from "@gild/runtime";
import type { AgentHub } from "./agent-hub.js";
import type { AppService } from "./app-service.js";
import type { ArtifactService } from "./artifact-service.js";
import type { CommandService } from "./command-service.js";
import type { ControllerConfig } from "./config.js";
import type { Enrollment } from "./enrollment.js";
import type { HostUpdateExecutor } from "./host-update-executor.js";
import type { HostUpdateOperations } from "./host-update-operations.js";
import type { ImageService } from "./image-service.js";
import type { ControllerMetrics } from "./metrics.js";
import type { TlsMaterial } from "./pki.js";
import type { RequestAudit } from "./request-audit.js";
import type { RolloutExecutor } from "./rollout-executor.js";
import type { RolloutOperations } from "./rollout-operations.js";
import type { Store } from "./store/store.js";
import type { TransferServer } from "./transfer-server.js";

/**
 * What the controller uses of the btrfs image catalog (`@gild/btrfs` ImageStore): an interface, so that
 * tests of the API (auth, validation, rollout requests) run with a stand-in and without root.
 */
export type ControllerImageStore = Pick<ImageStore, "list" | "get" | "exists" | "remove" | "sendStream">;

/** What the controller uses of the image builds (`@gild/runtime` ImageBuilder on the same catalog). */
export type ControllerImageBuilder = Pick<ImageBuilder, "createFromDir" | "createFromDebootstrap" | "update">;

/** Everything the routes and the upgrade router work with; made once by buildController. */
export interface Services {
  config: ControllerConfig;
  log: Logger;
  store: Store;
  imageStore: ControllerImageStore;
  imageBuilder: ControllerImageBuilder;
  capabilities: StreamCapabilities;
  tls: TlsMaterial;
  hub: AgentHub;
  commands: CommandService;
  artifacts: ArtifactService;
  transfers: TransferServer;
  images: ImageService;
  enrollment: Enrollment;
  apps: AppService;
  /** What operators do with rollouts (start, plan, verbs). */
  rollouts: RolloutOperations;
  /** The loop that runs them. */
  rolloutExecutor: RolloutExecutor;
  /** What operators do with host updates (start, plan, verbs). */
  hostUpdates: HostUpdateOperations;
  /** The loop that runs them. */
  hostUpdateExecutor: HostUpdateExecutor;
  audit: RequestAudit;
  metrics: ControllerMetrics;
}
