import type { WindowRulesView, WindowRuleView } from "@gild/api-client";
import { formatMaintenanceWindow, GildError, parseMaintenanceWindows } from "@gild/core";
import type { FastifyInstance } from "fastify";
import { hostByName, isLabelSelector } from "../host-selection.js";
import { effectiveWindows } from "../maintenance-windows.js";
import { jsonResponses, pathParams, removedSchema } from "../route-schemas.js";
import type { Services } from "../services.js";
import { exactObject, windowRuleSchema } from "../view-schemas.js";

/** What these routes use. */
export type WindowRouteDeps = Pick<Services, "store" | "rolloutExecutor" | "hostUpdateExecutor"> & {
  now: () => number;
};

/** A changed rule may open (or close) a host: every job that covers one plans again now. */
function pokeAll(services: WindowRouteDeps): void {
  for (const host of services.store.hosts.list()) {
    services.rolloutExecutor.pokeHost(host.id);
    services.hostUpdateExecutor.pokeHost(host.id);
  }
}

const LABEL = /^[A-Za-z0-9_./-]{1,63}=[A-Za-z0-9_./-]{1,63}$/;

/** A target is a label selector (`role=web`) or the name of a joined host. */
function checkTarget(services: Pick<WindowRouteDeps, "store">, target: string): void {
  if (isLabelSelector(target)) {
    if (!LABEL.test(target))
      throw new GildError("GILD_INVALID_SPEC", `"${target}" is not a label selector key=value`, {
        details: { problems: [{ path: "target", message: "must be a host name or key=value" }] },
      });
    return;
  }
  hostByName(services.store.hosts, target);
}

/**
 * Maintenance windows (docs/architecture.md, Maintenance windows): `PUT /v1/maintenance-windows/:target`
 * sets a host's or a label's windows, `DELETE` removes them, `GET /v1/maintenance-windows` lists them
 * with the hosts each rule governs now.
 */
export async function windowRoutes(app: FastifyInstance, services: WindowRouteDeps): Promise<void> {
  const tags = ["maintenance-windows"];
  const params = pathParams({ target: "a host's name, or a label selector key=value" });
  app.get(
    "/v1/maintenance-windows",
    {
      schema: {
        summary: "List maintenance window rules",
        description:
          "Each rule with the hosts it governs now (a host with a rule of its own ignores label rules).",
        tags,
        response: jsonResponses(
          "the rules",
          exactObject({ rules: { type: "array", items: windowRuleSchema } }),
        ),
      },
    },
    async (): Promise<WindowRulesView> => {
      const rules = services.store.windows.list();
      const hosts = services.store.hosts.list();
      const governed = new Map<string, string[]>();
      for (const host of hosts)
        for (const rule of effectiveWindows(host, rules).rules)
          governed.set(rule.target, [...(governed.get(rule.target) ?? []), host.name]);
      return {
        rules: rules.map(
          (r): WindowRuleView => ({
            target: r.target,
            kind: isLabelSelector(r.target) ? "label" : "host",
            spec: r.spec,
            hosts: governed.get(r.target) ?? [],
            setBy: r.setBy,
            setAt: r.setAt,
          }),
        ),
      };
    },
  );

  app.put<{ Params: { target: string }; Body: { spec?: unknown } }>(
    "/v1/maintenance-windows/:target",
    {
      schema: {
        summary: "Set the maintenance windows of a host or label",
        description:
          "Replaces the target's windows; rollouts and host updates plan again at once. The spec is stored in its canonical form.",
        tags,
        params,
        response: jsonResponses("set", exactObject({ target: { type: "string" }, spec: { type: "string" } })),
      },
      // Checked by the handler (GILD_INVALID_SPEC, with the problem's path): documented only.
      config: {
        documented: {
          body: {
            type: "object",
            required: ["spec"],
            properties: {
              spec: {
                type: "string",
                maxLength: 1000,
                description: "one or more windows, comma-separated",
                examples: ["Sat 02:00-05:00 UTC"],
              },
            },
          },
        },
      },
    },
    async (req) => {
      const { target } = req.params;
      checkTarget(services, target);
      const raw = req.body?.spec;
      if (typeof raw !== "string" || raw.length > 1000)
        throw new GildError("GILD_INVALID_SPEC", "spec must be a window spec string", {
          details: {
            problems: [{ path: "spec", message: "must be a string such as 'Sat 02:00-05:00 UTC'" }],
          },
        });
      // Stored in its canonical form: listings read the same whatever case or spacing was typed.
      const spec = parseMaintenanceWindows(raw).map(formatMaintenanceWindow).join(", ");
      services.store.windows.set({ target, spec, setBy: req.actor || null, setAt: services.now() });
      pokeAll(services);
      req.auditSummary = `maintenance window of ${target}: ${spec}`;
      return { target, spec };
    },
  );

  app.delete<{ Params: { target: string } }>(
    "/v1/maintenance-windows/:target",
    {
      schema: {
        summary: "Remove the maintenance windows of a host or label",
        tags,
        params,
        response: jsonResponses("removed", removedSchema("the target")),
      },
    },
    async (req) => {
      const { target } = req.params;
      if (!services.store.windows.remove(target))
        throw new GildError("GILD_NOT_FOUND", `${target} has no maintenance window`, {
          hint: "list them with `gild host window ls`",
        });
      pokeAll(services);
      req.auditSummary = `removed the maintenance window of ${target}`;
      return { removed: target };
    },
  );
}
