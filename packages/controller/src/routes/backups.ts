import { chmod, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { GildError } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { jsonResponses } from "../route-schemas.js";
import type { Services } from "../services.js";
import { storeFailure } from "../store/store-errors.js";
import { exactObject } from "../view-schemas.js";

/** What these routes use. */
export interface BackupRouteDeps extends Pick<Services, "config" | "store"> {
  now: () => number;
}

/** The name of a copy made at `at`: sorts by time, and holds no character a shell or URL minds. */
export function backupFileName(at: number): string {
  return `gild-${new Date(at).toISOString().replace(/[:.]/g, "-")}.db`;
}

/** A fastify plugin: register it with its dependencies (`app.register(backupRoutes, deps)`). */
export async function backupRoutes(app: FastifyInstance, services: BackupRouteDeps): Promise<void> {
  app.post(
    "/v1/backups",
    {
      schema: {
        summary: "Back up the controller's store",
        description:
          "Writes a consistent copy of the SQLite store to the controller's data directory (backups/), while the controller goes on; copy it off the server. No other process may open the database while the controller runs. A PostgreSQL store is refused: back it up with pg_dump.",
        tags: ["backups"],
        response: jsonResponses(
          "the copy, on the controller's server",
          exactObject({
            path: { type: "string", description: "the copy's path on the controller's server" },
            bytes: { type: "integer" },
            createdAt: { type: "integer", description: "ms since the epoch" },
          }),
        ),
      },
    },
    async (req) => {
      const createdAt = services.now();
      const dir = services.config.paths.backups;
      const path = join(dir, backupFileName(createdAt));
      // Under a name of its own until it is whole: a copy cut short (a full disk) is never taken for one.
      const partial = `${path}.partial`;
      try {
        await services.store.db.backup(partial);
        // Hashed credentials and tokens: for root's eyes, as the data dir is.
        await chmod(partial, 0o600);
        await rename(partial, path);
      } catch (err) {
        // With the journal SQLite keeps beside the copy while it writes it.
        for (const file of [partial, `${partial}-journal`]) await rm(file, { force: true });
        if ((err as NodeJS.ErrnoException).code === "ENOSPC")
          throw new GildError("GILD_NO_SPACE", `no space left for a backup in ${dir}`, {
            hint: "free space on the controller's data disk (df -h), or remove old copies from backups/",
          });
        throw storeFailure(err) ?? err;
      }
      const bytes = (await stat(path)).size;
      req.auditSummary = `backed up the store to ${path}`;
      return { path, bytes, createdAt };
    },
  );
}
