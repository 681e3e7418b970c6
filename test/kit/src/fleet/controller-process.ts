import { existsSync } from "node:fs";
import { join } from "node:path";
import { controllerUnitEnvironment } from "../systemd-unit.js";
import { waitFor } from "../wait.js";
import { healthz } from "./controller-http.js";
import { type FleetContext, logTail, recordFor, setRecord } from "./fleet-context.js";
import { isRunning, spawnDetached } from "./process-record.js";

export const CONTROLLER_ROLE = "controller";

/** The harness's own controller flags; options.controllerArgs come after them, so they win. */
export const DEFAULT_CONTROLLER_ARGS: readonly string[] = ["--offline-grace", "5s"];

/**
 * Start `gild controller run` on the bridge address, detached, unless it already runs; resolves when
 * /healthz answers and cli.json is written (the CLI needs it).
 */
export async function startController(ctx: FleetContext): Promise<void> {
  const { state } = ctx;
  let record = recordFor(ctx, CONTROLLER_ROLE);
  if (!record || !isRunning(record)) {
    record = spawnDetached({
      role: CONTROLLER_ROLE,
      marker: state.controllerDataDir,
      file: process.execPath,
      args: [
        ctx.cli,
        "controller",
        "run",
        "--data-dir",
        state.controllerDataDir,
        "--pool",
        state.controllerPool,
        "--listen",
        `${state.bridgeAddress}:${state.controllerPort}`,
        "--public-url",
        state.controllerUrl,
        ...DEFAULT_CONTROLLER_ARGS,
        ...state.controllerArgs,
      ],
      // As gild-controller.service runs it (its malloc settings).
      env: { ...ctx.baseEnv, ...controllerUnitEnvironment() },
      logFile: state.controllerLogFile,
    });
    setRecord(ctx, record);
    ctx.log(`controller: started (pid ${record.pid}), waiting for ${state.controllerUrl}/healthz`);
  }
  const started = record;
  const cliJson = join(state.controllerDataDir, "cli.json");
  const outcome = await waitFor(
    async () => {
      if (!isRunning(started)) return "exited";
      // cli.json is written right after listen: wait for both, or the first CLI call may miss it.
      return (await healthz(state.controllerUrl, state.controllerDataDir)) && existsSync(cliJson)
        ? "ready"
        : false;
    },
    { timeoutMs: ctx.startTimeoutMs, intervalMs: 50, what: `${state.controllerUrl}/healthz` },
  );
  if (outcome === "exited") {
    throw new Error(
      `the controller exited before it answered /healthz; ${state.controllerLogFile} ends with:\n${logTail(state.controllerLogFile)}`,
    );
  }
  ctx.log(`controller: healthy at ${state.controllerUrl}`);
}
