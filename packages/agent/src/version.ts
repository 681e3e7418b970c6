/** This agent's release, sent in Hello. */
export const AGENT_VERSION = "0.1.0";
