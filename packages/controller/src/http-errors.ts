import { GildError, toGildError } from "@gild/core";
import type { FastifyError, FastifyInstance } from "fastify";
import { storeFailure } from "./store/store-errors.js";

/** One of ajv's errors as a problem with the path of the field it is about, named. */
function validationProblem(v: NonNullable<FastifyError["validation"]>[number]): {
  path: string;
  message: string;
} {
  const at = (v.instancePath || "").replace(/^\//, "").replace(/\//g, ".");
  const join = (field: string) => (at ? `${at}.${field}` : field);
  const params = v.params as { additionalProperty?: string; missingProperty?: string };
  if (v.keyword === "additionalProperties" && params.additionalProperty !== undefined)
    return { path: join(params.additionalProperty), message: "is not a known field" };
  if (v.keyword === "required" && params.missingProperty !== undefined)
    return { path: join(params.missingProperty), message: "is required" };
  return { path: at || "body", message: v.message ?? "invalid" };
}

/** Answer every error as `{ error: { code, message, hint?, details? } }` with the code's HTTP status. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | GildError | Error, req, reply) => {
    let gild: GildError;
    if (err instanceof GildError) gild = err;
    else if ((err as FastifyError).validation) {
      const problems = ((err as FastifyError).validation ?? []).map(validationProblem);
      gild = new GildError(
        "GILD_BAD_REQUEST",
        `invalid request: ${problems.map((p) => `${p.path} ${p.message}`).join("; ")}`,
        {
          details: { problems },
        },
      );
    } else if ((err as FastifyError).statusCode === 413) {
      gild = new GildError("GILD_BODY_TOO_LARGE", err.message, { hint: "send at most 1 MiB" });
    } else if ((err as FastifyError).statusCode && ((err as FastifyError).statusCode as number) < 500) {
      gild = new GildError("GILD_BAD_REQUEST", err.message);
    } else {
      const unwritable = storeFailure(err);
      gild = unwritable ?? toGildError(err);
      if (unwritable)
        req.log.warn({ code: gild.code, err: gild.message }, "request refused: the store cannot write");
      else req.log.error({ err }, "request failed");
    }
    reply.status(gild.status).send({ error: gild.toJSON() });
  });
  app.setNotFoundHandler((req, reply) => {
    const gild = new GildError("GILD_NOT_FOUND", `no route ${req.method} ${req.url.split("?")[0]}`);
    reply.status(404).send({ error: gild.toJSON() });
  });
}
