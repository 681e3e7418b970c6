/** The gild release this build is: the CLI's --version, the agent's Hello, the controller's Welcome and /healthz. */
export const GILD_VERSION = "0.1.0";
