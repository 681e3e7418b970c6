import { userInfo } from "node:os";

/**
 * Everything the CLI reads from its environment, read once here (STYLE.md 5: no process.env reads
 * elsewhere). Flags override these.
 */
export interface CliEnv {
  /** GILD_POOL: default pool for local image commands. */
  pool: string | undefined;
  /** GILD_CONTROLLER: controller URL. */
  controller: string | undefined;
  /** GILD_TOKEN: admin token (else read from the token file). */
  token: string | undefined;
  /** GILD_CONTROLLER_DIR: the controller's data dir, where `gild` on the controller finds its URL, token and CA. */
  controllerDir: string;
  /** GILD_CA: CA certificate to trust for the controller. */
  caFile: string | undefined;
  /** Who runs the command, recorded as the author of what it makes (SUDO_USER when run through sudo). */
  actor: string;
  /** NO_COLOR: plain output without colour codes. */
  noColor: boolean;
  /**
   * GILD_TEST_REBOOT=restart: `gild agent run` answers a reboot command by stopping its apps and
   * exiting with 75 instead of rebooting (a test hook; docs/configuration.md). Never on a real server.
   */
  testRebootByRestart: boolean;
}

export function readCliEnv(env: NodeJS.ProcessEnv = process.env): CliEnv {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (containers): keep "unknown".
  }
  return Object.freeze({
    pool: env.GILD_POOL || undefined,
    controller: env.GILD_CONTROLLER || undefined,
    token: env.GILD_TOKEN || undefined,
    controllerDir: env.GILD_CONTROLLER_DIR || "/var/lib/gild/controller",
    caFile: env.GILD_CA || undefined,
    actor: env.SUDO_USER || user,
    noColor: Boolean(env.NO_COLOR),
    testRebootByRestart: env.GILD_TEST_REBOOT === "restart",
  });
}
