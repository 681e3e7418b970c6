import { get } from "../api.js";
import { ago, bytes } from "../format.js";
import { useNow, usePolled } from "../hooks.js";
import { Section, State } from "./common.js";

/** Every host: state, last seen, images, apps with health, free space, labels. */
export function FleetPage() {
  const { data, error } = usePolled(() => get("GET /v1/hosts", "/v1/hosts"));
  const now = useNow(5000);
  return (
    <Section title="Fleet" error={error} loaded={data !== undefined}>
      {data && data.hosts.length === 0 && (
        <p>
          No hosts yet: <code>gild token create</code>, then join one.
        </p>
      )}
      {data && data.hosts.length > 0 && (
        <table class="hosts">
          <thead>
            <tr>
              <th>Host</th>
              <th>State</th>
              <th>Last seen</th>
              <th>Images</th>
              <th>Apps</th>
              <th>Free space</th>
              <th>Labels</th>
            </tr>
          </thead>
          <tbody>
            {data.hosts.map((h) => (
              <tr key={h.id} data-host={h.name}>
                <td>{h.name}</td>
                <td>
                  <State value={h.state} />
                </td>
                <td>{h.connected ? "now" : ago(h.lastSeen, now)}</td>
                <td>{h.images.map((i) => `${i.line}@${i.version}`).join(", ") || "–"}</td>
                <td>
                  {h.apps.length === 0
                    ? "–"
                    : h.apps.map((a) => (
                        <div key={a.name}>
                          {a.name} gen {a.generation} <State value={a.health} />
                        </div>
                      ))}
                </td>
                <td>
                  {bytes(h.poolFreeBytes)} of {bytes(h.poolTotalBytes)}
                </td>
                <td>
                  {Object.entries(h.labels)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(", ") || "–"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}
