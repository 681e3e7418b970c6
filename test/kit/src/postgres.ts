import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { registerCleanup } from "./cleanup-registry.js";
import { findRepoRoot } from "./fleet/repo-root.js";

/** A PostgreSQL 15 server of a test's own: its admin URL, and how to stop or start it again. */
export interface TestPostgres {
  /** postgres://postgres@localhost/postgres?host=<its socket dir> */
  url: string;
  dir: string;
  /** Stop the server (fast shutdown: open connections are ended), keeping its data. */
  pause(): void;
  /** Start it again after pause(). */
  resume(): void;
  /** Stop it and remove its cluster. */
  destroy(): void;
}

const script = () => join(findRepoRoot(), "scripts", "test-postgres.sh");
const bash = (command: string, env: Record<string, string> = {}) =>
  execFileSync("bash", ["-c", `. '${script()}' && ${command}`], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });

/**
 * Start a temporary PostgreSQL cluster (scripts/test-postgres.sh, as test/run does): a Unix socket in
 * its own temp dir, no TCP port. Needs postgresql-15 (requirement "postgres").
 */
export function startTestPostgres(): TestPostgres {
  const out = bash('start_test_postgres && echo "$GILD_TEST_POSTGRES_DIR"');
  const dir = out.trim().split("\n").pop() as string;
  const env = { GILD_TEST_POSTGRES_DIR: dir };
  const unregister = registerCleanup(`postgres cluster ${dir}`, () => {
    bash("stop_test_postgres", env);
  });
  return {
    url: `postgres://postgres@localhost/postgres?host=${dir}`,
    dir,
    pause: () => bash("pause_test_postgres", env),
    resume: () => bash("resume_test_postgres", env),
    destroy: () => {
      bash("stop_test_postgres", env);
      unregister();
    },
  };
}
