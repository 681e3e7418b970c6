import { get } from "../api.js";
import { clock } from "../format.js";
import { usePolled } from "../hooks.js";
import { Section } from "./common.js";

/** The audit log: every mutating call, who made it, when, and the result. */
export function AuditPage() {
  const { data, error } = usePolled(() => get("GET /v1/audit", "/v1/audit?limit=200"));
  return (
    <Section title="Audit" error={error} loaded={data !== undefined}>
      {data && (
        <>
          <p class="hint">
            Requests refused for want of a token since the controller started: {data.refusedSinceStart}
          </p>
          <table class="audit">
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>Request</th>
                <th>Status</th>
                <th>What</th>
              </tr>
            </thead>
            <tbody>
              {data.entries.map((e) => (
                <tr key={e.id}>
                  <td>{clock(e.at)}</td>
                  <td>{e.actor}</td>
                  <td>
                    <code>
                      {e.method} {e.path}
                    </code>
                  </td>
                  <td class={e.status >= 400 ? "bad" : ""}>{e.status}</td>
                  <td>{e.summary ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </Section>
  );
}
