/** The gild release this build is; agents and controllers exchange it in Hello/Welcome. */
export const GILD_VERSION = "0.1.0";
