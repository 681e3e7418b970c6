import { readdirSync, readFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { GildError } from "@gild/core";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { errorResponses, pathParams } from "../route-schemas.js";

/** What these routes use. */
export interface DashboardRouteDeps {
  /** The dashboard's built files (the dashboard package's dist: index.html and assets/), or null. */
  dir: string | null;
  log: Logger;
}

/**
 * Where the dashboard's built files are: the dist of the @gild/dashboard package this controller was
 * installed with (a dependency of the controller, built by `pnpm build`), or null when it is not there.
 */
export function locateDashboard(): string | null {
  try {
    return dirname(fileURLToPath(import.meta.resolve("@gild/dashboard/index.html")));
  } catch {
    // Not installed beside the controller: the API works without it, and / says what is missing.
    return null;
  }
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

/**
 * The web dashboard: GET / is its page, GET /assets/* its scripts, styles and icon. Both are public
 * (they hold no data; every answer they show comes from the API, behind its roles). The files are read
 * once when the controller starts and served from memory by exact name: no path from a URL reaches
 * the filesystem. Vite names assets by their content hash, so they may be cached for good; the page
 * itself is never cached, so a new release is picked up at the next load.
 */
export async function dashboardRoutes(app: FastifyInstance, deps: DashboardRouteDeps): Promise<void> {
  const assets = new Map<string, { type: string; body: Buffer }>();
  let index: Buffer | null = null;
  if (deps.dir) {
    try {
      index = readFileSync(join(deps.dir, "index.html"));
      for (const name of readdirSync(join(deps.dir, "assets"))) {
        const type = TYPES[extname(name)];
        if (type) assets.set(name, { type, body: readFileSync(join(deps.dir, "assets", name)) });
      }
    } catch (err) {
      deps.log.warn({ err, dir: deps.dir }, "the dashboard's files cannot be read: / will say so");
      index = null;
    }
  }
  const missing = () =>
    new GildError("GILD_UNAVAILABLE", "this controller was built without its dashboard", {
      hint: "build it (pnpm build builds packages/dashboard) and restart the controller; the API and the CLI work without it",
    });

  const page = (description: string) => ({
    200: { description, content: { "text/html": { schema: { type: "string" } } } },
    ...errorResponses,
  });
  app.get(
    "/",
    {
      schema: {
        summary: "The web dashboard",
        description:
          "One HTML page (hash routes); it signs in with POST /v1/session and reads the API with the cookie. 503 GILD_UNAVAILABLE when the controller was built without it.",
        tags: ["dashboard"],
        produces: ["text/html"],
        response: page("the page"),
      },
    },
    async (_req, reply) => {
      if (!index) throw missing();
      return reply
        .type(TYPES[".html"] as string)
        .header("cache-control", "no-cache")
        .send(index);
    },
  );

  app.get<{ Params: { "*": string } }>(
    "/assets/*",
    {
      schema: {
        summary: "The dashboard's scripts, styles and images",
        description: "Files named by their content's hash are cached for good.",
        tags: ["dashboard"],
        params: pathParams({ "*": "a file name from the page" }),
        response: {
          200: {
            description: "the file, with its type",
            content: { "*/*": { schema: { type: "string" } } },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const name = req.params["*"];
      const asset = assets.get(name);
      if (!asset) throw new GildError("GILD_NOT_FOUND", "no such dashboard file");
      // Vite's names carry their content's hash (index-C1HV-z5n.css): such a file never changes.
      const hashed = /-[\w-]{8}\.\w+$/.test(name);
      return reply
        .type(asset.type)
        .header("cache-control", hashed ? "public, max-age=31536000, immutable" : "no-cache")
        .send(asset.body);
    },
  );
}
