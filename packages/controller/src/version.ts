/** This controller's release, sent to agents in Welcome. */
export const CONTROLLER_VERSION = "0.1.0";
