import { get } from "../api.js";
import { usePolled } from "../hooks.js";
import { Section, State } from "./common.js";

/** Every app, per host: generation, image and code versions, state and health. */
export function AppsPage() {
  const { data, error } = usePolled(() => get("GET /v1/apps", "/v1/apps"));
  return (
    <Section title="Apps" error={error} loaded={data !== undefined}>
      {data && data.apps.length === 0 && (
        <p>
          No apps yet: <code>gild app create</code>.
        </p>
      )}
      {data?.apps.map((app) => (
        <article key={app.spec.name} data-app={app.spec.name}>
          <h2>
            {app.spec.name} <small>on {app.spec.image}</small>
            {app.spec.code && <small>, code {app.spec.code}</small>}
          </h2>
          <table class="apps">
            <thead>
              <tr>
                <th>Host</th>
                <th>Generation</th>
                <th>Image</th>
                {app.spec.code && <th>Code</th>}
                <th>State</th>
                <th>Health</th>
              </tr>
            </thead>
            <tbody>
              {app.instances.map((i) => (
                <tr key={i.host} data-host={i.host}>
                  <td>
                    {i.host} {i.hostState !== "online" && <State value={i.hostState} />}
                  </td>
                  <td>{i.generation}</td>
                  <td>
                    {app.spec.image}@{i.imageVersion}
                  </td>
                  {app.spec.code && <td>{i.codeVersion ? `${app.spec.code}@${i.codeVersion}` : "–"}</td>}
                  <td>
                    <State value={i.state} />
                  </td>
                  <td title={i.healthDetail}>
                    <State value={i.health} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </article>
      ))}
    </Section>
  );
}
