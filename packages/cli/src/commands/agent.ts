import { hostname } from "node:os";
import {
  DEFAULT_AGENT_POOL,
  DEFAULT_AGENT_STATE_DIR,
  type RawAgentConfig,
  resolveAgentConfig,
} from "@gild/agent/config";
import type { Command } from "commander";
import { readJsonConfigFile } from "../config-file.js";
import type { CliContext } from "../context.js";
import { collect, parseKeyValues } from "./options.js";

function defaultHostName(): string {
  return (
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63) || "host"
  );
}

/** `gild agent join|run`: enrollment and the agent daemon. */
export function registerAgentCommands(program: Command, ctx: CliContext): void {
  const agent = program.command("agent").description("the agent daemon that runs on every server");

  agent
    .command("join <controller-url> <token>")
    .description("join this server to a controller with a one-time token (checks the controller's CA first)")
    .option("--name <name>", "this host's name in the fleet (default: the hostname)")
    .option("--label <key=value>", "a label apps and rollouts select by (repeatable)", collect)
    .option(
      "--state-dir <dir>",
      `where identity and credential are kept (default ${DEFAULT_AGENT_STATE_DIR})`,
    )
    .option("--json", "print the identity as JSON")
    .action(
      async (
        url: string,
        token: string,
        flags: { name?: string; label?: string[]; stateDir?: string; json?: boolean },
      ) => {
        const render = ctx.renderer(flags);
        // The agent's code is loaded only when used: every other gild command starts faster without it.
        const { joinController } = await import("@gild/agent");
        const identity = await joinController({
          controllerUrl: url,
          token,
          name: flags.name ?? defaultHostName(),
          labels: parseKeyValues(flags.label, "--label"),
          stateDir: flags.stateDir ?? DEFAULT_AGENT_STATE_DIR,
        });
        render.result(
          identity,
          () =>
            `joined ${identity.controllerUrl} as ${identity.name} (${identity.hostId}); start it with: gild agent run`,
        );
      },
    );

  agent
    .command("run")
    .description("run the agent until SIGTERM: connect, report inventory, execute commands")
    .option("--config <file>", "JSON config file; flags override it")
    .option("--state-dir <dir>", `identity, credential, journal (default ${DEFAULT_AGENT_STATE_DIR})`)
    .option("--pool <path>", `btrfs pool for images, apps and data (default ${DEFAULT_AGENT_POOL})`)
    .option("--runtime <driver>", "container driver: auto|systemd|process (default auto)")
    .option("--max-download-rate <rate>", "limit image downloads, e.g. 50MiB (default none)")
    .option(
      "--peer-listen <addr:port>",
      "serve verified image chunks to other hosts on this address, which they reach this host at (default off)",
    )
    .option(
      "--peer-upload-rate <rate>",
      "limit uploads to other hosts, all together, e.g. 50MiB (default none)",
    )
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace (default info)")
    .option(
      "--metrics-listen <addr>",
      "serve Prometheus metrics at GET /metrics on PORT (127.0.0.1) or HOST:PORT (default off)",
    )
    .action(
      async (flags: {
        config?: string;
        metricsListen?: string;
        stateDir?: string;
        pool?: string;
        runtime?: string;
        maxDownloadRate?: string;
        peerListen?: string;
        peerUploadRate?: string;
        logLevel?: string;
      }) => {
        const raw: RawAgentConfig = flags.config ? (readJsonConfigFile(flags.config) as RawAgentConfig) : {};
        if (flags.stateDir !== undefined) raw.stateDir = flags.stateDir;
        if (flags.pool !== undefined) raw.pool = flags.pool;
        if (flags.runtime !== undefined) raw.runtime = flags.runtime;
        if (flags.maxDownloadRate !== undefined) raw.maxDownloadRate = flags.maxDownloadRate;
        if (flags.peerListen !== undefined) raw.peerListen = flags.peerListen;
        if (flags.peerUploadRate !== undefined) raw.peerUploadRate = flags.peerUploadRate;
        if (flags.logLevel !== undefined) raw.logLevel = flags.logLevel;
        if (flags.metricsListen !== undefined) raw.metricsListen = flags.metricsListen;
        const { agentExitCode, runAgent } = await import("@gild/agent");
        let running: Awaited<ReturnType<typeof runAgent>>;
        try {
          running = await runAgent(resolveAgentConfig(raw), undefined, {
            rebootByRestart: ctx.env.testRebootByRestart,
          });
        } catch (err) {
          // Not joined, a bad config, damaged state files: a restart cannot fix these, and the exit
          // status tells systemd so (RestartPreventExitStatus=78 in the unit).
          ctx.renderer({}).error(err);
          process.exit(agentExitCode(err));
        }
        const stop = () => void running.stop();
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
        const code = await running.done;
        // A transfer or probe in flight must not keep a stopped agent alive; containers keep running.
        process.exit(code);
      },
    );
}
